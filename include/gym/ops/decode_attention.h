// Decode attention: one new query per row against the KV cache, without the batched matmuls
// (at::matmul would issue B·nkv tiny sgemm calls per layer and step, two per layer). For each
// (row, head): scores = q·Kᵀ·scale + mask, a float32 softmax, out = p·V — in that order, as the
// reference computes it; GQA reads kv head h / (nh / nkv) in place. CPU float32, no autograd,
// AVX2 + FMA (run-time check); agrees with the reference to float32 rounding.
#pragma once
#include <torch/types.h>

namespace gym::ops {

// q [B, nh, 1, D]; k, v [B, nkv, C, D] contiguous (the cache buffers, C ≥ length); mask [B, 1, 1, length]
// additive or undefined. Whether decode_attention() takes them.
bool decode_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& mask);
// → [B, nh, 1, D]: attention over the first `length` cache positions.
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t length,
                               const torch::Tensor& mask, double scale);
// The reference: matmul, scale, mask, softmax, matmul (repeat_interleave for GQA).
torch::Tensor decode_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t length,
                                         const torch::Tensor& mask, double scale);

}  // namespace gym::ops
