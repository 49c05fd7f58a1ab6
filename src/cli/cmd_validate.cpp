#include "cli/commands.h"
#include "gym/core/error.h"

namespace gym::cli {

void add_validate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("validate", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { runtime_error("'gym validate' is not implemented yet"); });
}

}  // namespace gym::cli
