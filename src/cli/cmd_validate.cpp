// gym validate CONFIG [overrides]: the fully resolved config with each value's origin.
#include <torch/cuda.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/train_summary.h"
#include "gym/config/config.h"
#include "gym/data/dataset.h"
#include "gym/tokenizer/tokenizer.h"
#include "gym/io/hf_dir.h"
#include "gym/model/config.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"
#include "gym/dist/env.h"
#include "gym/dist/launcher.h"
#include "gym/recipes/memory.h"

namespace gym::cli {

namespace {
// The first n examples as training will see them (LLaMA-Factory's "training example" print), from
// the model's tokenizer. A created preset that does not exist yet is not created here.
void print_preview(const config::TrainConfig& c, int64_t n) {
  std::filesystem::path dir;
  try {
    dir = io::resolve_model_dir(c.model.model_name_or_path);
  } catch (const Error&) {
    if (c.model.create_model_preset.empty()) throw;
    config_error("--preview needs the tokenizer of '{}', which create_model_preset makes on the first `gym train`; "
                 "train once (or gym create-model) first", c.model.model_name_or_path);
  }
  const auto tok = tokenizer::Tokenizer::from_dir(dir);
  const bool sft = c.training.stage == "sft";
  auto splits = data::load_datasets(c.data, !sft);
  data::RenderOptions ro{c.model.template_name, c.model.enable_thinking, c.data.cutoff_len, c.data.train_on_prompt,
                         c.data.mask_history, c.data.default_system};
  for (int64_t i = 0; i < n && i < static_cast<int64_t>(splits.train.size()); ++i) {
    const auto& conv = splits.train[static_cast<size_t>(i)];
    std::cout << "# example " << i + 1 << " (" << conv.source << ")\n";
    if (sft) {
      std::cout << data::preview_example(data::encode_sft(conv, tok, ro), tok) << "\n";
    } else {
      const auto p = data::encode_rl_prompt(conv, tok, ro, c.rl.max_prompt_length);
      std::cout << "prompt_ids:\n[" << fmt::format("{}", fmt::join(p.prompt_ids, ", ")) << "]\nprompt:\n" << p.prompt_text
                << "\ncolumns:\n" << p.extra.dump() << "\n";
    }
  }
}

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
      const auto j = parse_json(read_file(path), false);
      if (!j.is_discarded() && j.value("_name_or_path", "") == c.model.model_name_or_path) {
        return "# memory estimate from " + path.string() + "\n" + recipes::estimate_memory(c, model::parse_arch_config(j, path.string()), dist::config_world_size()).table();
      }
    }
    return "# memory estimate: needs the model's config.json (not found locally)\n";
  }
  return recipes::estimate_memory(c, *arch, dist::config_world_size()).table();
}
// What `gym train` would refuse on this machine although the config itself is valid (validate
// also checks presets whose model and data live elsewhere): one note line each.
std::string local_notes(const config::TrainConfig& c) {
  std::string out;
  for (const auto* list : {&c.data.dataset, &c.data.eval_dataset})
    for (const auto& name : *list) {
      try {
        (void)data::resolve_dataset(name, c.data.dataset_dir);
      } catch (const Error& e) {
        out += std::string("# note: gym train here would stop: ") + e.what() + "\n";
      }
    }
  if (c.model.create_model_preset.empty()) {
    try {
      (void)io::resolve_model_dir(c.model.model_name_or_path);
    } catch (const Error& e) {
      out += std::string("# note: gym train here would stop: ") + e.what() + "\n";
    }
  }
  if (c.training.device.rfind("cuda", 0) == 0 && !torch::cuda::is_available())
    out += "# note: gym train here would stop: device " + c.training.device + ", but no CUDA device is visible\n";
  return out;
}
}  // namespace

void add_validate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("validate", "Check a config and print it fully resolved, with each value's origin");
  auto file = std::make_shared<std::string>();
  cmd->add_option("config", *file, "YAML config file")->required();
  auto preview = std::make_shared<int64_t>(0);
  cmd->add_option("--preview", *preview, "Also print the first N training examples as encoded (input_ids, inputs, label_ids, labels)")
      ->check(CLI::NonNegativeNumber);
  cmd->allow_extras();
  cmd->callback([cmd, file, preview] {
    auto args = cmd->remaining();
    // --nproc_per_node N (--nnodes M): resolve and estimate for that many processes
    const auto flags = dist::take_launch_flags(args);
    if (flags.given()) dist::plan_world_size(std::max<int64_t>(1, flags.nproc_per_node) * flags.nnodes);
    const auto rc = config::load_config(*file, args);
    std::cout << "# gym validate " << *file << "\n" << rc.to_yaml_with_origins() << "\n" << train_summary(rc);
    std::cout << memory_summary(rc.config) << local_notes(rc.config);
    std::cout << "config OK\n";
    if (*preview > 0) print_preview(rc.config, *preview);
  });

  auto* doc = app.add_subcommand("config-doc", "Print the configuration reference (docs/config.md)");
  doc->callback([] { std::cout << config::config_reference_markdown(); });
}

}  // namespace gym::cli
