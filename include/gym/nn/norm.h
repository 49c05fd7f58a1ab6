// RMS normalisations of the Qwen3 families.
#pragma once
#include <torch/nn/module.h>
#include <torch/types.h>

namespace gym::nn {

// x̂ = x / √(mean(x²) + eps), computed in float32.
//   standard (Qwen3, Qwen3-MoE, Omni):  weight · cast(x̂)        — weight initialised to 1
//   unit_offset (Qwen3-Next):           cast(x̂ · (1 + weight))  — weight initialised to 0
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps, bool unit_offset = false, torch::TensorOptions options = {});
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
  bool unit_offset;
};
TORCH_MODULE(RMSNorm);

// Qwen3-Next's linear-attention output norm: weight · cast(x̂) · silu(gate), per value head.
class RMSNormGatedImpl : public torch::nn::Module {
 public:
  RMSNormGatedImpl(int64_t dim, double eps, torch::TensorOptions options = {});
  // x, gate: [..., dim] → [..., dim]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& gate);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNormGated);

}  // namespace gym::nn
