// The optimizer side of a training step, shared by the SFT and RL loops: AdamW with HF's
// decay / no-decay groups, the LR schedule, gradient clipping, and skipping non-finite steps.
#pragma once
#include <torch/optim/adamw.h>
#include <torch/serialize/output-archive.h>
#include <torch/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gym/config/config.h"
#include "gym/dist/comm.h"

namespace gym::recipes {

class ZeroShards;

// Saves a LibTorch archive through write_file_atomic_stream: atomic, and a failed write (disk
// full) is an error naming the file and the OS reason, where LibTorch says only "file write failed".
void save_archive(torch::serialize::OutputArchive& archive, const std::filesystem::path& path);

struct StepOutcome {
  bool applied = true;       // false: skipped because the loss or a gradient was not finite
  double grad_norm = 0.0;    // before clipping
  double lr = 0.0;
};

class Optimization {
 public:
  // named_params: the trainable parameters with their names (norms and biases get no decay).
  Optimization(const std::vector<std::pair<std::string, torch::Tensor>>& named_params,
               const config::TrainingArgs& args, int64_t total_steps);
  ~Optimization();

  // Data parallel over comm's ranks (call once, before the first step): step() then sums the
  // gradients over ranks in one flat bucket (zero_stage 0) or keeps AdamW's state sharded
  // (ZeRO 1: all-reduce; 2 and 3: reduce-scatter of the gradients; see recipes/zero.h).
  void distribute(std::shared_ptr<dist::Communicator> comm, int64_t zero_stage);
  // Collective: gathers a sharded optimizer state for save() (rank 0 saves); no-op unsharded.
  void prepare_save();

  // Call after the micro-batches' backward: applies the optimizer step for `step` (0-based)
  // unless `loss` or the gradients are non-finite. Throws after max_nonfinite_steps in a row.
  // With several ranks, `loss` must be the global one (equal on every rank): every rank then
  // skips or applies the same step.
  StepOutcome step(int64_t step, double loss);

  double lr_at(int64_t step) const;
  int64_t total_steps() const { return total_steps_; }
  int64_t warmup_steps() const { return warmup_; }
  int64_t skipped_steps() const { return skipped_; }

  // optimizer.pt (AdamW moments and step counts) plus the skip counters.
  void save(const std::filesystem::path& dir) const;
  void load(const std::filesystem::path& dir);

 private:
  void clear_gradients();

  std::vector<torch::Tensor> params_;
  std::vector<bool> decay_;
  std::unique_ptr<torch::optim::AdamW> adamw_;
  std::shared_ptr<dist::Communicator> comm_;
  std::unique_ptr<ZeroShards> zero_;
  std::vector<torch::Tensor> zero_saved_;
  config::TrainingArgs args_;
  int64_t total_steps_;
  int64_t warmup_;
  int64_t consecutive_nonfinite_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace gym::recipes
