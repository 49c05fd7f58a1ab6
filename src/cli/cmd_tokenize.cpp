#include "cli/commands.h"
#include "gym/core/error.h"

namespace gym::cli {

void add_tokenize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { runtime_error("'gym tokenize' is not implemented yet"); });
}

}  // namespace gym::cli
