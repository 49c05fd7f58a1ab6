// Feed-forward blocks: the SwiGLU MLP and the sparse MoE block (Qwen3-MoE, Qwen3-Next with its
// always-on shared expert, the Omni thinker).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/types.h>

#include <utility>

#include "gym/nn/linear.h"

namespace gym::nn {

// down(silu(gate(x)) · up(x))
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(int64_t hidden, int64_t intermediate, torch::TensorOptions options = {});
  torch::Tensor forward(const torch::Tensor& x);
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

struct MoeOptions {
  int64_t hidden = 0, num_experts = 0, top_k = 0, expert_intermediate = 0;
  bool norm_topk_prob = true;
  int64_t shared_expert_intermediate = 0;   // > 0: Qwen3-Next's shared expert with a sigmoid gate
};

// fp32 softmax router, top-k (renormalised iff norm_topk_prob), tokens grouped by expert;
// plus σ(shared_expert_gate(x)) · shared_expert(x) when configured.
class SparseMoeImpl : public torch::nn::Module {
 public:
  explicit SparseMoeImpl(const MoeOptions& o, torch::TensorOptions options = {});
  // x: [B, T, H] → y [B, T, H]; router_logits [B*T, E] (model dtype) for the load-balancing loss
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x);
  Linear gate{nullptr};                 // role kRouter
  torch::nn::ModuleList experts{nullptr};
  MLP shared_expert{nullptr};
  Linear shared_expert_gate{nullptr};   // role kGate, [1, H]
  MoeOptions opts;
};
TORCH_MODULE(SparseMoe);

}  // namespace gym::nn
