// ZeRO stage 1/2 over the flat trainable buffer (arXiv:1910.02054): each rank keeps AdamW's
// moments for its contiguous chunk of the flattened trainable parameters only, updates that
// chunk, and all-gathers the updated parameters. Stage 2 reduce-scatters the gradients (Gloo has
// no reduce_scatter: the communicator emulates it), stage 1 all-reduces them. The update is
// AdamW's formula term for term, so the weights equal stage 0 (within float rounding of the norm).
#pragma once
#include <torch/types.h>

#include <memory>
#include <vector>

#include "gym/config/config.h"
#include "gym/dist/comm.h"

namespace gym::recipes {

class ZeroShards {
 public:
  // params: the trainable tensors in optimizer order; decay[i]: whether param i gets weight decay.
  ZeroShards(std::vector<torch::Tensor> params, const std::vector<bool>& decay, std::shared_ptr<dist::Communicator> comm,
             int64_t stage);

  // Reduces the gradients over ranks into this rank's chunk; returns the global gradient norm
  // (collective). Missing gradients count as zeros.
  double reduce_gradients();
  // AdamW on this rank's chunk with the reduced gradients (scaled by grad_scale for clipping),
  // then all-gathers the parameters into the model (collective).
  void step(double lr, double grad_scale, const config::TrainingArgs& args);

  // Full (unsharded) moments for a checkpoint (collective) and back from one.
  std::vector<torch::Tensor> gather_state();   // {exp_avg [N], exp_avg_sq [N], step []}
  void load_state(const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq, int64_t step);

  int64_t stage() const { return stage_; }
  int64_t numel() const { return numel_; }

 private:
  torch::TensorOptions opts() const;   // float32 on the parameters' device
  torch::Tensor flat_params() const;   // [padded]
  std::vector<torch::Tensor> params_;
  std::shared_ptr<dist::Communicator> comm_;
  int64_t stage_, numel_ = 0, chunk_ = 0;
  torch::Tensor decay_mask_;            // [chunk] 1 where weight decay applies
  torch::Tensor grad_, exp_avg_, exp_avg_sq_;   // [chunk]
  int64_t step_ = 0;
};

}  // namespace gym::recipes
