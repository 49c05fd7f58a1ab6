// The CPU path of selective_log_softmax for float32 logits (ops/selective_log_softmax.cpp): each
// row of the vocabulary read twice in the forward (max, then Σ exp from L2) and once in the backward,
// which writes the gradient in the same pass, instead of the twin's ~12 LibTorch passes over
// [rows, V] (docs/performance.md). Rows are shared with the decode helper threads; a row's result
// does not depend on which thread computes it.
#pragma once
#include <torch/types.h>

namespace gym::ops {

// float32 CPU logits [B, T, V] with unit stride along V, on a CPU with AVX2 and FMA.
bool log_softmax_rows_apply(const torch::Tensor& logits);

// ids [B, T] int64 contiguous (checked to lie in [0, V) by the caller). Fills logp and lse, float32
// [B, T] contiguous: logp = z[id] − lse, lse = log Σ exp(z), z = logits / temperature.
void log_softmax_rows_forward(const torch::Tensor& logits, const torch::Tensor& ids, double temperature, torch::Tensor& logp,
                              torch::Tensor& lse);

// ∂(Σ g·logp)/∂logits = (1[v = id] − exp(z_v − lse)) · g / temperature: [B, T, V] float32 contiguous,
// written into `grad` when given (contiguous; it may be the logits themselves, which are then lost).
torch::Tensor log_softmax_rows_backward(const torch::Tensor& logits, const torch::Tensor& ids, double temperature, const torch::Tensor& lse,
                                        const torch::Tensor& g_logp, torch::Tensor grad = {});

}  // namespace gym::ops
