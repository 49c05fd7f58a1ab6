// Full (softmax) attention of the Qwen3 families: GQA, per-head q/k RMSNorm before RoPE, a
// preallocated KV cache; optionally Qwen3-Next's sigmoid output gate and partial RoPE.
#pragma once
#include <torch/nn/module.h>
#include <torch/types.h>

#include "gym/nn/cache.h"
#include "gym/nn/linear.h"
#include "gym/nn/norm.h"

namespace gym::nn {

struct AttentionOptions {
  int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0;
  double eps = 1e-6;
  bool norm_unit_offset = false;   // q_norm/k_norm compute x̂·(1 + w) (Qwen3-Next)
  bool output_gate = false;        // q_proj yields [q_h | gate_h] per head; out = o_proj(attn · σ(gate))
};

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionOptions& o, torch::TensorOptions options = {});
  // x: [B, T, H]; mask: [B, 1, T, past + T] additive; cos/sin: [B, 1, T, R] (R ≤ head_dim rotated).
  // With a cache, keys/values are written at positions past..past+T of buffers of `capacity`.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& cos,
                        const torch::Tensor& sin, LayerCache* cache = nullptr, int64_t past = 0, int64_t capacity = 0);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};
  AttentionOptions opts;
};
TORCH_MODULE(Attention);

// Additive attention mask [B, 1, T, S] on the device of `like`: causal over absolute positions plus
// key padding. attention_mask: [B, S] (1 = keep) or undefined; past: cached positions before the T queries.
torch::Tensor causal_mask(const torch::Tensor& attention_mask, int64_t batch, int64_t t, int64_t past, const torch::Tensor& like);

// clamp(cumsum(mask) − 1, 0) for the last t positions of a [B, S] mask.
torch::Tensor positions_from_mask(const torch::Tensor& attention_mask, int64_t t);

}  // namespace gym::nn
