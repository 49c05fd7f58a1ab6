// checkpoint-N folders: discovery, rotation, the start-of-run decision (resume or refuse), RNG state.
#pragma once
#include <torch/types.h>

#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include "gym/config/config.h"

namespace gym::checkpoint {

namespace fs = std::filesystem;

// checkpoint-N folders of output_dir, sorted by N (complete ones only: renamed into place).
std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& output_dir);
std::optional<fs::path> latest_checkpoint(const fs::path& output_dir);

// Deletes the oldest checkpoints beyond `keep` (each renamed first, so a kill never leaves a
// half-deleted checkpoint). `best` (load_best_model_at_end) is kept as HF's _sorted_checkpoints does.
void rotate_checkpoints(const fs::path& output_dir, int64_t keep, const fs::path& best = {});

// What a run does at start, following LLaMA-Factory / HF Trainer:
// - resume_from_checkpoint: a path, or "true" for the latest in output_dir (error if none);
// - a non-empty output_dir with checkpoints resumes from the latest (unless overwrite_output_dir);
// - without checkpoints, gym's own leftovers (a run that stopped early) are removed and the run
//   starts afresh; anything foreign there is refused;
// - overwrite_output_dir removes gym's previous outputs there (the manifest's entries, never a
//   foreign file: see output_dir.h) and starts afresh.
// Call it holding the output_dir lock.
struct StartPlan {
  bool fresh = true;
  fs::path resume_from;   // empty when fresh
};
StartPlan plan_start(const config::OutputArgs& out, const std::vector<std::pair<std::string, fs::path>>& inputs = {});

// The step number of a checkpoint-N folder name (throws for other names).
int64_t checkpoint_step(const fs::path& dir);

}  // namespace gym::checkpoint
