#include "cli/commands.h"
#include "gym/core/error.h"

namespace gym::cli {

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { runtime_error("'gym train' is not implemented yet"); });
}

}  // namespace gym::cli
