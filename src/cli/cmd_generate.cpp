#include "cli/commands.h"
#include "gym/core/error.h"

namespace gym::cli {

void add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { runtime_error("'gym generate' is not implemented yet"); });
}

}  // namespace gym::cli
