#include "gym/recipes/train.h"

#include <spdlog/spdlog.h>

#include "gym/checkpoint/output_dir.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

namespace gym::recipes {

namespace {

// The finished run in output_dir was resolved to gym_config.yaml (after a "# resolved by" line); a
// different resolved config now is a config error naming the first key that differs.
void check_same_run(const std::string& output_dir, const std::string& resolved_yaml) {
  const auto path = std::filesystem::path(output_dir) / "gym_config.yaml";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return;
  std::istringstream was(read_file(path)), now(resolved_yaml);
  std::string a, b;
  if (was.peek() == '#') std::getline(was, a);
  for (;;) {
    const bool more_a = static_cast<bool>(std::getline(was, a)), more_b = static_cast<bool>(std::getline(now, b));
    if (!more_a && !more_b) return;
    if (!more_a || !more_b || a != b)
      config_error("output_dir '{}' holds a finished run of another config ({} → {}); set overwrite_output_dir: true to train "
                   "again there, or choose another output_dir",
                   output_dir, more_a ? a : std::string("(nothing)"), more_b ? b : std::string("(nothing)"));
  }
}

}  // namespace

void run_training(const config::ResolvedConfig& rc, const dist::RunContext& ctx) {
  const auto& c = rc.config;
  if (c.model.model_name_or_path.empty()) config_error("model_name_or_path is not set: gym train needs a base model");
  if (c.data.dataset.empty()) config_error("dataset is not set: gym train needs at least one dataset");
  if (c.output.output_dir.empty()) config_error("output_dir is not set: gym train needs somewhere to write");
  // A missing adapter that another config trains (e.g. the SFT warm start of a GSPO run): train it first.
  if (!c.model.adapter_name_or_path.empty() && !c.model.adapter_warm_start.empty() &&
      !std::filesystem::exists(std::filesystem::path(c.model.adapter_name_or_path) / "adapter_config.json")) {
    static std::vector<std::string> warming;   // the adapters whose warm starts are running (a cycle would recurse forever)
    if (std::find(warming.begin(), warming.end(), c.model.adapter_name_or_path) != warming.end())
      config_error("adapter_warm_start: {} leads back to adapter {}, which it is itself training (a cycle)", c.model.adapter_warm_start,
                   c.model.adapter_name_or_path);
    spdlog::info("adapter {} does not exist yet: training it with {} first", c.model.adapter_name_or_path, c.model.adapter_warm_start);
    warming.push_back(c.model.adapter_name_or_path);
    try {
      run_training(config::load_config(c.model.adapter_warm_start, {"--output_dir", c.model.adapter_name_or_path}), ctx);
    } catch (...) {
      warming.pop_back();
      throw;
    }
    warming.pop_back();
  }
  // Rerunning a finished run's command does not train again (nor replace it by an older checkpoint);
  // a changed command is refused rather than ignored.
  if (!c.output.overwrite_output_dir && (c.output.resume_from_checkpoint.empty() || c.output.resume_from_checkpoint == "false") &&
      checkpoint::holds_finished_run(c.output.output_dir)) {
    check_same_run(c.output.output_dir, rc.to_yaml());
    spdlog::info("output_dir {} holds a finished run: nothing to do (overwrite_output_dir: true trains again)", c.output.output_dir);
    return;
  }
  if (c.training.stage == "sft") return run_sft(rc, ctx);
  return run_rl(rc, ctx);
}

}  // namespace gym::recipes
