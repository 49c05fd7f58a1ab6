// Each subcommand lives in its own cmd_*.cpp and registers itself on the app here.
#pragma once
#include <CLI/CLI.hpp>

#include <string>

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
void add_report_command(CLI::App& app);
// gym help [COMMAND...] and gym completion bash (cmd_help.cpp).
void add_help_commands(CLI::App& app);
// "; did you mean 'train'?" for a word close to one of app's commands, else "".
std::string did_you_mean(CLI::App& app, const std::string& word);
// 0 when argv[1] is an option or a known command; else prints one error line and returns 2.
int check_command_word(CLI::App& app, int argc, char** argv);

}  // namespace gym::cli
