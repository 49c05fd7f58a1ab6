// gym train CONFIG [overrides]
#include "cli/commands.h"
#include "gym/config/config.h"
#include "gym/recipes/train.h"

namespace gym::cli {

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train (stage sft, grpo or gspo) from a YAML config; overrides after it");
  auto file = std::make_shared<std::string>();
  cmd->add_option("config", *file, "YAML config file")->required();
  cmd->allow_extras();
  cmd->callback([cmd, file] {
    const auto rc = config::load_config(*file, cmd->remaining());
    recipes::run_training(rc);
  });
}

}  // namespace gym::cli
