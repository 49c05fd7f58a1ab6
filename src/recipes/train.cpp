#include "gym/recipes/train.h"

#include <spdlog/spdlog.h>

#include "gym/checkpoint/output_dir.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"

#include <filesystem>

namespace gym::recipes {

void run_training(const config::ResolvedConfig& rc, const dist::RunContext& ctx) {
  const auto& c = rc.config;
  if (c.model.model_name_or_path.empty()) config_error("model_name_or_path is not set: gym train needs a base model");
  if (c.data.dataset.empty()) config_error("dataset is not set: gym train needs at least one dataset");
  if (c.output.output_dir.empty()) config_error("output_dir is not set: gym train needs somewhere to write");
  if (c.training.fp16) config_error("fp16 is not supported on this build (CPU); use bf16: true or float32");
  // A missing adapter that another config trains (e.g. the SFT warm start of a GSPO run): train it first.
  if (!c.model.adapter_name_or_path.empty() && !c.model.adapter_warm_start.empty() &&
      !std::filesystem::exists(std::filesystem::path(c.model.adapter_name_or_path) / "adapter_config.json")) {
    spdlog::info("adapter {} does not exist yet: training it with {} first", c.model.adapter_name_or_path, c.model.adapter_warm_start);
    run_training(config::load_config(c.model.adapter_warm_start, {"--output_dir", c.model.adapter_name_or_path}), ctx);
  }
  // Rerunning a finished run's command does not train again (nor replace it by an older checkpoint).
  if (!c.output.overwrite_output_dir && (c.output.resume_from_checkpoint.empty() || c.output.resume_from_checkpoint == "false") &&
      checkpoint::holds_finished_run(c.output.output_dir)) {
    spdlog::info("output_dir {} holds a finished run: nothing to do (overwrite_output_dir: true trains again)", c.output.output_dir);
    return;
  }
  if (c.training.stage == "sft") return run_sft(rc, ctx);
  return run_rl(rc, ctx);
}

}  // namespace gym::recipes
