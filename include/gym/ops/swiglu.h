// The SwiGLU product of the Qwen3 MLPs, silu(g) · u, as one op: the autograd function reads g and u
// once forward and g, u, ∂h once backward (LibTorch's silu, mul and their backward pass over the
// [tokens, intermediate] tensors five times and keep silu(g) for the backward).
#pragma once
#include <torch/types.h>

namespace gym::ops {

// g, u: the same shape, float32, on a CPU with AVX2 and FMA.
bool swiglu_applies(const torch::Tensor& g, const torch::Tensor& u);

// h = silu(g) · u, silu(g) = g / (1 + exp(−g)). Differentiable w.r.t. g and u:
//   ∂u = ∂h · silu(g),   ∂g = ∂h · u · σ(g) · (1 + g · (1 − σ(g))).
torch::Tensor swiglu(const torch::Tensor& g, const torch::Tensor& u);

// torch::silu(g) * u (any dtype/device; autograd through LibTorch ops).
torch::Tensor swiglu_reference(const torch::Tensor& g, const torch::Tensor& u);

}  // namespace gym::ops
