// A linear layer with a LoRA adapter on a frozen base, y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ, as one autograd op.
// Composed of LibTorch ops, x feeds two products and autograd sums their input gradients in a
// fresh [N, in] tensor per layer (seven per Qwen3 layer); here ∂x is one GEMM accumulated into
// the other (beta 1). Every product is the one LibTorch's mm/addmm backward runs, in the same
// orientation and scaling order: bit-identical to the composition, forward and backward.
#pragma once
#include <torch/types.h>

namespace gym::ops {

// x [N, in], w [out, in] without a gradient, a [r, in], b [out, r]: float32 (any device).
bool lora_linear_applies(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b);

// y = x·wᵀ + s·(x·aᵀ)·bᵀ [N, out]. Differentiable w.r.t. x, a and b:
//   g = s·(∂y·b),  ∂a = gᵀ·x,  ∂b = s·(∂yᵀ·(x·aᵀ)),  ∂x = ∂y·w + g·a.
torch::Tensor lora_linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b, double s);

// The composition: mm(x, wᵀ) then addmm_(x·aᵀ, bᵀ, 1, s) (autograd through LibTorch).
torch::Tensor lora_linear_reference(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b,
                                    double s);

}  // namespace gym::ops
