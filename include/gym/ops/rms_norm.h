// RMSNorm of the Qwen3 families as one op: y = x / √(mean(x²) + eps) · w, per row of the last
// dimension, float32. The autograd function reads x once forward and x and ∂y once backward
// (instead of the ~5 forward and ~10 backward elementwise passes of the composite formula); the
// weight is frozen (LoRA never trains norms).
#pragma once
#include <torch/types.h>

namespace gym::ops {

// x [..., D] float32 on a CPU with AVX2 and FMA, w [D] float32 without a gradient to compute.
bool rms_norm_applies(const torch::Tensor& x, const torch::Tensor& w);

// y = x̂ · w with x̂ = x · rsqrt(mean(x²) + eps), in that order (w · x̂ is the same product).
// Differentiable w.r.t. x: ∂x = r · (g·w) − x · r³ · Σ(g·w·x) / D per row, r = rsqrt(mean(x²) + eps).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps);

// The composite formula (any dtype/device; autograd through LibTorch ops).
torch::Tensor rms_norm_reference(const torch::Tensor& x, const torch::Tensor& w, double eps);

}  // namespace gym::ops
