// Rotary position embedding: inverse frequencies (default or YaRN) as a buffer, cos/sin tables.
#pragma once
#include <torch/nn/module.h>
#include <torch/types.h>

#include <optional>
#include <string>
#include <utility>

namespace gym::nn {

struct RopeOptions {
  int64_t rotary_dim = 0;                 // dims rotated per head: head_dim × partial_rotary_factor
  double theta = 10000.0;
  std::string scaling_type = "default";   // default | yarn
  double factor = 1.0;
  int64_t max_position_embeddings = 32768;
  std::optional<int64_t> original_max_position_embeddings;
  std::optional<double> attention_factor;
  double beta_fast = 32.0, beta_slow = 1.0;
  bool truncate = true;
};

class RotaryEmbeddingImpl : public torch::nn::Module {
 public:
  explicit RotaryEmbeddingImpl(const RopeOptions& o, torch::Device device = torch::kCPU);
  // position_ids: [B, T] (any device) → cos, sin: [B, 1, T, rotary_dim] in `dtype`, on inv_freq's device
  std::pair<torch::Tensor, torch::Tensor> tables(const torch::Tensor& position_ids, torch::Dtype dtype) const;
  torch::Tensor inv_freq;   // [rotary_dim / 2] float32 (a buffer: follows .to(device))
  double attention_scaling = 1.0;
};
TORCH_MODULE(RotaryEmbedding);

// q·cos + rotate_half(q)·sin on the first cos.size(-1) dims of x; the rest pass unchanged.
// x: [B, h, T, D]; cos, sin: [B, 1, T, R] with R ≤ D.
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace gym::nn
