// The attention probabilities of the training and prefill path as one op: softmax(x · scale + mask)
// over the last dimension. The autograd function reads the scores once forward and the
// probabilities and their gradient once backward (LibTorch: a multiply, an add, the softmax and
// their backward, each a pass over [B, heads, T, S]).
#pragma once
#include <torch/types.h>

namespace gym::ops {

// scores [B, H, T, S] float32 contiguous on a CPU with AVX2 and FMA; mask undefined or [B, 1, T, S]
// float32 (added to every head; no gradient).
bool masked_softmax_applies(const torch::Tensor& scores, const torch::Tensor& mask);

// p = softmax(scores · scale + mask, -1): [B, H, T, S]. ∂scores = scale · p · (∂p − Σ ∂p·p).
torch::Tensor masked_softmax(const torch::Tensor& scores, const torch::Tensor& mask, double scale);

// torch::softmax(scores * scale + mask, -1) (any dtype/device; autograd through LibTorch ops).
torch::Tensor masked_softmax_reference(const torch::Tensor& scores, const torch::Tensor& mask, double scale);

}  // namespace gym::ops
