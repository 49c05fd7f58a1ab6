#include "cli/commands.h"
#include "gym/core/error.h"

namespace gym::cli {

void add_score_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("score", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { runtime_error("'gym score' is not implemented yet"); });
}

}  // namespace gym::cli
