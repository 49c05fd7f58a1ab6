#include "cli/commands.h"
#include "gym/core/error.h"

namespace gym::cli {

void add_bench_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { runtime_error("'gym bench' is not implemented yet"); });
}

}  // namespace gym::cli
