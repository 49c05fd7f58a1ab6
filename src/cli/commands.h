// Each subcommand lives in its own cmd_*.cpp and registers itself on the app here.
#pragma once
#include <CLI/CLI.hpp>

namespace gym::cli {

// Set by a subcommand callback; main() returns it.
extern int g_exit_code;

void add_train_command(CLI::App& app);
void add_validate_command(CLI::App& app);
void add_create_model_command(CLI::App& app);
void add_score_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_bench_command(CLI::App& app);

}  // namespace gym::cli
