#include "gym/checkpoint/checkpoint.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <regex>

#include "gym/checkpoint/output_dir.h"
#include "gym/core/error.h"

namespace gym::checkpoint {

namespace {
const std::regex kCheckpointName(R"(checkpoint-(\d+))");

}  // namespace

int64_t checkpoint_step(const fs::path& dir) {
  std::smatch m;
  const std::string n = dir.filename().string();
  if (!std::regex_match(n, m, kCheckpointName)) config_error("'{}' is not a checkpoint-N folder", dir.string());
  return std::stoll(m[1].str());
}

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& output_dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  if (!fs::is_directory(output_dir)) return out;
  for (const auto& e : fs::directory_iterator(output_dir)) {
    const std::string n = e.path().filename().string();
    std::smatch m;
    if (e.is_directory() && std::regex_match(n, m, kCheckpointName) && fs::exists(e.path() / "trainer_state.json"))
      out.emplace_back(std::stoll(m[1].str()), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<fs::path> latest_checkpoint(const fs::path& output_dir) {
  auto all = list_checkpoints(output_dir);
  if (all.empty()) return std::nullopt;
  return all.back().second;
}

void rotate_checkpoints(const fs::path& output_dir, int64_t keep, const fs::path& best) {
  auto all = list_checkpoints(output_dir);
  // Only checkpoints gym wrote here count and go: a checkpoint-N folder the manifest does not
  // list is someone else's.
  const auto ours = manifest_entries(output_dir);
  all.erase(std::remove_if(all.begin(), all.end(), [&](const auto& ck) { return !ours.count(ck.second.filename().string()); }),
            all.end());
  // HF's _sorted_checkpoints: the best checkpoint moves next to the latest and so is kept (with a
  // limit of 1, the best and the latest both stay).
  if (!best.empty() && all.size() > 1) {
    auto it = std::find_if(all.begin(), all.end(), [&](const auto& ck) { return ck.second.filename() == best.filename(); });
    if (it != all.end() && it + 1 != all.end()) {
      auto kept = *it;
      all.erase(it);
      all.insert(all.end() - 1, kept);
      keep = std::max<int64_t>(keep, 2);
    }
  }
  for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(keep, 0)) < all.size(); ++i) {
    spdlog::info("removing old checkpoint {} (save_total_limit {})", all[i].second.string(), keep);
    // Renamed first (one atomic step: no longer a checkpoint), so that a kill while its files are
    // deleted never leaves a half-deleted folder that still counts as a checkpoint.
    auto doomed = all[i].second;
    doomed += ".tmp.rm." + std::to_string(::getpid());
    std::error_code ec;
    fs::rename(all[i].second, doomed, ec);
    if (ec) runtime_error("cannot remove old checkpoint '{}': {}", all[i].second.string(), ec.message());
    fs::remove_all(doomed, ec);
  }
}

StartPlan plan_start(const config::OutputArgs& out, const std::vector<std::pair<std::string, fs::path>>& inputs) {
  const fs::path dir = out.output_dir;
  StartPlan plan;
  if (!out.resume_from_checkpoint.empty() && out.resume_from_checkpoint != "false") {
    if (out.resume_from_checkpoint == "true") {
      auto latest = latest_checkpoint(dir);
      if (!latest) config_error("resume_from_checkpoint: true, but output_dir '{}' has no checkpoint-N folder", dir.string());
      plan.resume_from = *latest;
    } else {
      plan.resume_from = out.resume_from_checkpoint;
      if (!fs::exists(plan.resume_from / "trainer_state.json"))
        config_error("resume_from_checkpoint '{}' is not a complete checkpoint (no trainer_state.json)", plan.resume_from.string());
    }
    // Resuming into output_dir writes gym's names there: a foreign file under one would be lost.
    check_no_foreign_outputs(dir, "resume_from_checkpoint");
    remove_temporaries(dir);   // half-written files and folders of the interrupted run
    plan.fresh = false;
    return plan;
  }
  if (out.overwrite_output_dir) {
    check_inputs_survive(dir, inputs);
    const auto removed = clear_previous_outputs(dir);
    if (!removed.empty())
      spdlog::info("overwrite_output_dir: removed {} earlier output(s) of gym in {} ({}{})", removed.size(), dir.string(),
                   removed.front(), removed.size() > 1 ? ", ..." : "");
    return plan;
  }
  if (auto latest = latest_checkpoint(dir)) {
    check_no_foreign_outputs(dir, "resuming");
    remove_temporaries(dir);   // half-written files and folders of the interrupted run
    spdlog::info("output_dir {} has checkpoints: resuming from {} (set overwrite_output_dir: true to start afresh)",
                 dir.string(), latest->string());
    plan.fresh = false;
    plan.resume_from = *latest;
    return plan;
  }
  if (!foreign_entries(dir).empty())
    config_error("output_dir '{}' already exists and holds files gym did not write; set overwrite_output_dir: true (gym "
                 "then removes only its own earlier outputs) or choose another output_dir",
                 dir.string());
  // Only gym's own files of a run that stopped before its first checkpoint: start again.
  check_inputs_survive(dir, inputs);
  const auto removed = clear_previous_outputs(dir);
  if (!removed.empty())
    spdlog::info("output_dir {} holds no checkpoint, only outputs of an earlier gym run that stopped early: starting afresh",
                 dir.string());
  return plan;
}

}  // namespace gym::checkpoint
