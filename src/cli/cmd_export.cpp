#include "cli/commands.h"
#include "gym/core/error.h"

namespace gym::cli {

void add_export_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { runtime_error("'gym export' is not implemented yet"); });
}

}  // namespace gym::cli
