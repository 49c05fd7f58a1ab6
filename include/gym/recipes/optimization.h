// The optimizer side of a training step, shared by the SFT and RL loops: AdamW with HF's
// decay / no-decay groups, the LR schedule, gradient clipping, and skipping non-finite steps.
#pragma once
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gym/config/config.h"

namespace gym::recipes {

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

  // Call after every micro-batch's backward: applies the optimizer step for `step` (0-based)
  // unless `loss` or the gradients are non-finite. Throws after max_nonfinite_steps in a row.
  StepOutcome step(int64_t step, double loss);

  double lr_at(int64_t step) const;
  int64_t total_steps() const { return total_steps_; }
  int64_t warmup_steps() const { return warmup_; }
  int64_t skipped_steps() const { return skipped_; }

  // optimizer.pt (AdamW moments and step counts) plus the skip counters.
  void save(const std::filesystem::path& dir) const;
  void load(const std::filesystem::path& dir);

 private:
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> adamw_;
  config::TrainingArgs args_;
  int64_t total_steps_;
  int64_t warmup_;
  int64_t consecutive_nonfinite_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace gym::recipes
