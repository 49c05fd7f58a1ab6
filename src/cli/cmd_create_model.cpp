#include "cli/commands.h"
#include "gym/core/error.h"

namespace gym::cli {

void add_create_model_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("create-model", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { runtime_error("'gym create-model' is not implemented yet"); });
}

}  // namespace gym::cli
