// Small-M linear: y = x·Wᵀ for a few rows (decoding: M = batch ≤ 16) without OpenBLAS's per-call
// packing of W. OpenBLAS copies the whole weight into its panel layout on every sgemm call
// (sgemm_incopy/oncopy); with M = 8 that copy costs more than the multiply itself. The CPU kernel
// streams each weight row once, from its [out, in] layout, and dots it with every row of x
// (AVX2 + FMA, chosen at run time; float32, CPU, no autograd); above 256 KB of weights the output
// rows are shared with helper threads (src/ops/cpu_workers.h), bit-identical to one thread. Summation order differs from
// OpenBLAS: results agree to float32 rounding (relative ~1e-6), not bit for bit.
#pragma once
#include <torch/types.h>

namespace gym::ops {

// The rows (product of x's leading dims) up to which linear() takes the small-M kernel.
constexpr int64_t kSmallMRows = 16;

// x [..., in], w [out, in] → [..., out]. The kernel when small_m_linear_applies(), else at::linear.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w);
// CPU float32 (both), x rows ≤ kSmallMRows, no gradient needed, and the CPU has AVX2 + FMA.
bool small_m_linear_applies(const torch::Tensor& x, const torch::Tensor& w);
// The kernel itself (the checks of small_m_linear_applies() except the row count are the caller's).
// With AVX-512 (and allow_avx512) it runs the same lane sums with half the FMA instructions: the
// results are bit-identical to the AVX2 path (allow_avx512 = false: for the test that says so).
torch::Tensor small_m_linear(const torch::Tensor& x, const torch::Tensor& w, bool allow_avx512 = true);
// The reference: at::linear (OpenBLAS sgemm).
torch::Tensor small_m_linear_reference(const torch::Tensor& x, const torch::Tensor& w);

// With an unmerged LoRA adapter in the same pass: x·Wᵀ + scaling · (x·Aᵀ)·Bᵀ, a [r, in], b [out, r].
// x·Aᵀ ([..., r]) first, then each output adds scaling · Σ_j t_j·B[o, j] to its dot product while W
// streams: the adapter costs no extra pass over the outputs and no merged copy of W. Every row's
// result is the same whatever the other rows (batch composition changes nothing).
torch::Tensor small_m_linear_lora(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b,
                                  double scaling, bool allow_avx512 = true);
// small_m_linear_applies() for both products, b float32 CPU [out, r], no gradient needed.
bool small_m_linear_lora_applies(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b);
// The reference twin: at::linear + addmm (the training forward's form).
torch::Tensor small_m_linear_lora_reference(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b,
                                            double scaling);

}  // namespace gym::ops
