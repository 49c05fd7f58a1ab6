// Per-token log-probabilities and entropies of completion tokens from raw logits, as TRL computes
// them (specs/gspo_grpo.md §1): divide by the sampling temperature, then log-softmax. Pure tensor
// functions; rows are processed in chunks so no full-size temporary ([B·T, V] in fp32) is built.
#pragma once
#include <torch/types.h>

namespace gym::rl {

// How many logits (rows × V) one chunk may hold: 4 Mi elements = 16 MiB of fp32.
inline constexpr int64_t kLogitsChunkElements = int64_t{1} << 22;

// log softmax(logits / temperature)[ids]
//   logits: [B, T, V] raw (before the temperature), any float dtype; ids: [B, T] int64 → [B, T].
// float32/float64: gather − logsumexp; bfloat16/half: log_softmax per chunk in that dtype (the
// logsumexp form is unstable there, as TRL notes). Differentiable w.r.t. logits: the backward pass
// recomputes the softmax chunk by chunk from the saved raw logits, so autograd keeps no [B, T, V]
// intermediate of its own.
torch::Tensor selective_log_softmax(const torch::Tensor& logits, const torch::Tensor& ids, double temperature = 1.0);

// Shannon entropy (nats) of softmax(logits / temperature): [B, T, V] → [B, T], without gradient.
// Computed per chunk in the logits' dtype (float32 for bfloat16/half input).
torch::Tensor entropy_from_logits(const torch::Tensor& logits, double temperature = 1.0);

}  // namespace gym::rl
