// Qwen3 building blocks with Hugging Face parameter names.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/types.h>

#include <optional>
#include <vector>

#include "gym/model/config.h"
#include "gym/nn/linear.h"

namespace gym::nn {

// weight · cast(x̂) with x̂ = x / rms(x) computed in float32 (HF's cast-then-multiply order).
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps, torch::TensorOptions options = {});
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// cos/sin tables for positions (rotate_half convention; default or YaRN inverse frequencies).
struct Rope {
  explicit Rope(const model::ArchConfig& c);
  // position_ids: [B, T] → cos, sin: [B, 1, T, D] in `dtype`
  std::pair<torch::Tensor, torch::Tensor> tables(const torch::Tensor& position_ids, torch::Dtype dtype) const;
  torch::Tensor inv_freq;      // [D/2] float32
  double attention_scaling = 1.0;
};

// Keys and values of every layer, preallocated to a capacity and filled in place.
struct KVCache {
  std::vector<torch::Tensor> k, v;   // per layer: [B, nkv, capacity, D]
  int64_t length = 0;                // positions filled so far
  int64_t capacity = 0;
};

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const model::ArchConfig& c, torch::TensorOptions options = {});
  // x: [B, T, H]; mask: [B, 1, T, S] additive (S = past + T); cos/sin: [B, 1, T, D]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& cos,
                        const torch::Tensor& sin, KVCache* cache, int64_t layer);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};
  int64_t heads, kv_heads, head_dim;
};
TORCH_MODULE(Attention);

// down(silu(gate(x)) · up(x))
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(int64_t hidden, int64_t intermediate, torch::TensorOptions options = {});
  torch::Tensor forward(const torch::Tensor& x);
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

// Qwen3-MoE sparse block: fp32 softmax router, top-k (renormalised), tokens grouped by expert.
class SparseMoeImpl : public torch::nn::Module {
 public:
  explicit SparseMoeImpl(const model::ArchConfig& c, torch::TensorOptions options = {});
  // x: [B, T, H] → y [B, T, H]; router_logits [B*T, E] (model dtype) for the load-balancing loss
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x);
  Linear gate{nullptr};
  torch::nn::ModuleList experts{nullptr};
  int64_t num_experts, top_k;
  bool norm_topk_prob;
};
TORCH_MODULE(SparseMoe);

// Additive attention mask [B, 1, T, S]: causal over absolute positions plus key padding.
// attention_mask: [B, S] (1 = keep) or undefined; past: cached positions before these T queries.
torch::Tensor causal_mask(const torch::Tensor& attention_mask, int64_t batch, int64_t t, int64_t past, torch::Dtype dtype);

// clamp(cumsum(mask) − 1, 0) for the last t positions of a [B, S] mask.
torch::Tensor positions_from_mask(const torch::Tensor& attention_mask, int64_t t);

}  // namespace gym::nn
