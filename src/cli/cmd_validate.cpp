// gym validate CONFIG [overrides]: the fully resolved config with each value's origin.
#include <iostream>

#include "cli/commands.h"
#include "cli/train_summary.h"
#include "gym/config/config.h"

namespace gym::cli {

void add_validate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("validate", "Check a config and print it fully resolved, with each value's origin");
  auto file = std::make_shared<std::string>();
  cmd->add_option("config", *file, "YAML config file")->required();
  cmd->allow_extras();
  cmd->callback([cmd, file] {
    const auto rc = config::load_config(*file, cmd->remaining());
    std::cout << "# gym validate " << *file << "\n" << rc.to_yaml_with_origins() << "\n" << train_summary(rc);
    std::cout << "config OK\n";
  });

  auto* doc = app.add_subcommand("config-doc", "Print the configuration reference (docs/config.md)");
  doc->callback([] { std::cout << config::config_reference_markdown(); });
}

}  // namespace gym::cli
