// Qwen3-Next's linear attention: Gated DeltaNet (../shared/specs/qwen3_next_omni.md).
//   in_proj_qkvz / in_proj_ba (grouped per key head) → causal depthwise conv + silu on [q|k|v]
//   → l2-normalised q, k; β = σ(b), g = −exp(A_log)·softplus(a + dt_bias)
//   → gated delta rule (chunked for prefill/training, recurrent for 1-token steps)
//   → RMSNormGated(o, z) per value head → out_proj.
#pragma once
#include <torch/nn/module.h>
#include <torch/types.h>

#include <utility>

#include "gym/nn/cache.h"
#include "gym/nn/linear.h"
#include "gym/nn/norm.h"

namespace gym::nn {

struct GatedDeltaNetOptions {
  int64_t hidden = 0;
  int64_t num_k_heads = 0, num_v_heads = 0;   // nv is a multiple of nk
  int64_t head_k_dim = 0, head_v_dim = 0;
  int64_t conv_kernel = 4;
  double eps = 1e-6;                           // of the gated RMSNorm
};

// Holds the causal depthwise conv's weight [C, 1, K] (no bias) under the name "weight".
struct DepthwiseConvImpl : torch::nn::Module {
  DepthwiseConvImpl(int64_t channels, int64_t kernel, torch::TensorOptions options);
  torch::Tensor weight;
};
TORCH_MODULE(DepthwiseConv);

class GatedDeltaNetImpl : public torch::nn::Module {
 public:
  explicit GatedDeltaNetImpl(const GatedDeltaNetOptions& o, torch::TensorOptions options = {});
  // x: [B, T, H]; pad_mask: [B, T] (1 = token) or undefined — padded positions enter as exact
  // zeros, so they never touch the state. With a cache, the conv and recurrent states continue
  // from it and are updated; T == 1 with a state takes the recurrent form.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& pad_mask, LayerCache* cache = nullptr);

  Linear in_proj_qkvz{nullptr}, in_proj_ba{nullptr}, out_proj{nullptr};
  DepthwiseConv conv1d{nullptr};       // C = 2·nk·dk + nv·dv channels
  torch::Tensor dt_bias, A_log;        // [nv]
  RMSNormGated norm{nullptr};          // over head_v_dim
  GatedDeltaNetOptions opts;
  bool force_recurrent = false;        // tests: run every length through the recurrent form
};
TORCH_MODULE(GatedDeltaNet);

// The gated delta rule. q, k: [B, T, h, dk]; v: [B, T, h, dv]; g (log-decay ≤ 0), beta: [B, T, h];
// initial_state: [B, h, dk, dv] or undefined (zeros). q and k are l2-normalised inside (eps 1e-6)
// and q scaled by 1/√dk. Returns o [B, T, h, dv] (in v's dtype) and the final state (float32).
std::pair<torch::Tensor, torch::Tensor> chunk_gated_delta_rule(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                                               const torch::Tensor& g, const torch::Tensor& beta,
                                                               const torch::Tensor& initial_state, int64_t chunk_size = 64);
std::pair<torch::Tensor, torch::Tensor> recurrent_gated_delta_rule(const torch::Tensor& q, const torch::Tensor& k,
                                                                   const torch::Tensor& v, const torch::Tensor& g,
                                                                   const torch::Tensor& beta, const torch::Tensor& initial_state);

}  // namespace gym::nn
