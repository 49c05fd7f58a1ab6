// gym validate CONFIG [overrides]: the fully resolved config with each value's origin.
#include <iostream>

#include "cli/commands.h"
#include "cli/train_summary.h"
#include "gym/config/config.h"
#include "gym/io/hf_dir.h"
#include "gym/model/config.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/dist/env.h"
#include "gym/dist/launcher.h"
#include "gym/recipes/memory.h"

namespace gym::cli {

namespace {
// The architecture: the model's config.json when it is reachable, else a created preset's shape.
std::string memory_summary(const config::TrainConfig& c) {
  std::optional<model::ArchConfig> arch;
  try {
    if (!c.model.create_model_preset.empty()) arch = model::preset_arch(c.model.create_model_arch, c.model.create_model_preset);
    else arch = model::load_arch_config(io::resolve_model_dir(c.model.model_name_or_path));
  } catch (const Error&) {
    // The presets ship their base model's published config.json (models/<preset>/config.json).
    for (const auto& e : std::filesystem::directory_iterator(source_dir() / "models")) {
      const auto path = e.path() / "config.json";
      if (!std::filesystem::exists(path)) continue;
      const auto j = nlohmann::json::parse(read_file(path), nullptr, false);
      if (!j.is_discarded() && j.value("_name_or_path", "") == c.model.model_name_or_path) {
        return "# memory estimate from " + path.string() + "\n" + recipes::estimate_memory(c, model::parse_arch_config(j, path.string()), dist::config_world_size()).table();
      }
    }
    return "# memory estimate: needs the model's config.json (not found locally)\n";
  }
  return recipes::estimate_memory(c, *arch, dist::config_world_size()).table();
}
}  // namespace

void add_validate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("validate", "Check a config and print it fully resolved, with each value's origin");
  auto file = std::make_shared<std::string>();
  cmd->add_option("config", *file, "YAML config file")->required();
  cmd->allow_extras();
  cmd->callback([cmd, file] {
    auto args = cmd->remaining();
    // --nproc_per_node N (--nnodes M): resolve and estimate for that many processes
    const auto flags = dist::take_launch_flags(args);
    if (flags.given()) dist::plan_world_size(std::max<int64_t>(1, flags.nproc_per_node) * flags.nnodes);
    const auto rc = config::load_config(*file, args);
    std::cout << "# gym validate " << *file << "\n" << rc.to_yaml_with_origins() << "\n" << train_summary(rc);
    std::cout << memory_summary(rc.config);
    std::cout << "config OK\n";
  });

  auto* doc = app.add_subcommand("config-doc", "Print the configuration reference (docs/config.md)");
  doc->callback([] { std::cout << config::config_reference_markdown(); });
}

}  // namespace gym::cli
