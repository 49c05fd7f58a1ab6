// The LM head and the cross-entropy in one pass over row chunks: Σ_k CE(h_k·Wᵀ, target_k) without
// the [K, V] logits, their log-softmax and their gradient ever held at once (3 × 131 MB per step on
// the `small` bench shape, 1024 rows × 32000). Each chunk's gradient with respect to h,
// (softmax(z) − onehot(target))·W, is formed in the forward pass while the chunk's logits are at
// hand, and the backward pass only scales it: the head's two GEMMs (logits, then dh) are the ones
// autograd would run, and the vocabulary-wide elementwise passes work on one chunk at a time.
#pragma once
#include <torch/types.h>

namespace gym::ops {

// h [K, H] (float32 or bfloat16), w [V, H] (frozen: no gradient for it), targets [K] int64 in [0, V)
// → the summed cross-entropy, a float32 scalar (logits cast to float32 before the log-softmax, as
// the reference does). Differentiable with respect to h only; the gradient is kept from the forward
// pass when h requires one, so a call under no_grad costs no [K, H] buffer.
torch::Tensor linear_cross_entropy(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& targets);

// The reference: cross_entropy(linear(h, w).float(), targets, reduction sum), gradients by autograd.
torch::Tensor linear_cross_entropy_reference(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& targets);

}  // namespace gym::ops
