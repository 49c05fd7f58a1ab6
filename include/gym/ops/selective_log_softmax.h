// Selective log-softmax: log softmax(logits / T)[ids] and the entropy of softmax(logits / T), from raw
// logits, without materialising the full [rows, V] log-softmax (TRL's selective_log_softmax and
// entropy_from_logits, specs/gspo_grpo.md §1).
#pragma once
#include <torch/types.h>

#include "gym/ops/ops.h"

namespace gym::ops {

struct TokenLogprobs {
  torch::Tensor logp;      // ids' shape: log p(id)
  torch::Tensor entropy;   // ids' shape, nats; undefined unless asked for
};

// logits: [B, T, V] or [N, V], raw (before the temperature), float32/float64/bfloat16/float16, any
// strides; ids: [B, T] or [N], integer in [0, V). Math in float32 (float64 for float64 logits); the
// outputs are float32 (float64). Differentiable w.r.t. the logits through logp and entropy: the
// backward pass recomputes p from the saved logits and per-row logsumexp, and returns the gradient
// in the logits' dtype.
//   ∂logp/∂z_v = (1[v = id] − p_v) / T,   ∂H/∂z_v = −p_v (log p_v + H) / T
TokenLogprobs selective_log_softmax(const torch::Tensor& logits, const torch::Tensor& ids, double temperature = 1.0,
                                    bool with_entropy = false, Impl impl = Impl::Auto);

// The reference: full log_softmax in float64, gather, entropy from the full distribution; the
// gradient comes from autograd. Same shapes; outputs float64.
TokenLogprobs selective_log_softmax_reference(const torch::Tensor& logits, const torch::Tensor& ids, double temperature = 1.0,
                                              bool with_entropy = false);

}  // namespace gym::ops
