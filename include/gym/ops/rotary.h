// Rotary position embedding of the training and prefill path as one op: out = x·cos + rotate_half(x)·sin
// reads x once and writes a contiguous [B, H, T, D] (LibTorch: a cat, a neg, two muls and an add
// forward, their backward with a zero-filled slice gradient, and an output in the transposed layout
// of x that the attention's reshape then copies). Products and sums round as LibTorch's (no FMA):
// bit-identical forward and backward.
#pragma once
#include <torch/types.h>

namespace gym::ops {

// x [B, H, T, D] float32 CPU (any strides, unit stride in D); cos, sin [B or 1, 1, T, R] float32
// contiguous, R even and ≤ D; AVX2.
bool rotary_applies(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// With h = R/2, per row: out[i] = x[i]·cos[i] − x[i+h]·sin[i] (i < h), x[i]·cos[i] + x[i−h]·sin[i]
// (h ≤ i < R), x[i] (i ≥ R). Differentiable w.r.t. x only; ∂x has the strides of x:
//   ∂x[i] = ∂o[i]·cos[i] + ∂o[i+h]·sin[i+h] (i < h),   ∂o[i]·cos[i] − ∂o[i−h]·sin[i−h] (h ≤ i < R).
torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// The formula in LibTorch ops (any dtype/device; autograd through LibTorch).
torch::Tensor rotary_reference(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace gym::ops
