// Per-token log-probabilities and entropies of completion tokens from raw logits, as TRL computes
// them (specs/gspo_grpo.md §1): divide by the sampling temperature, then log-softmax. Thin wrappers
// of ops::selective_log_softmax (gym/ops/selective_log_softmax.h), which never builds the full
// [B·T, V] log-softmax: chunked LibTorch on CPU, a one-pass kernel on CUDA.
#pragma once
#include <torch/types.h>

namespace gym::rl {

// How many logits (rows × V) one chunk of the CPU path holds: 4 Mi elements = 16 MiB of fp32.
inline constexpr int64_t kLogitsChunkElements = int64_t{1} << 22;

// log softmax(logits / temperature)[ids]
//   logits: [B, T, V] raw (before the temperature), any float dtype; ids: [B, T] int64 → [B, T].
// gather − logsumexp, in float32 for bfloat16/half logits (float64 for float64), returned in the
// logits' dtype. Differentiable w.r.t. logits: the backward pass recomputes the softmax from the
// saved raw logits and per-row logsumexp, so autograd keeps no [B, T, V] intermediate of its own.
torch::Tensor selective_log_softmax(const torch::Tensor& logits, const torch::Tensor& ids, double temperature = 1.0);

// Shannon entropy (nats) of softmax(logits / temperature): [B, T, V] → [B, T], without gradient.
// float32 for bfloat16/half input, else the logits' dtype.
torch::Tensor entropy_from_logits(const torch::Tensor& logits, double temperature = 1.0);

}  // namespace gym::rl
