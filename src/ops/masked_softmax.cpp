// Fused scaled, masked softmax (include/gym/ops/masked_softmax.h).
#include "gym/ops/masked_softmax.h"

#include <torch/autograd.h>

#include <cmath>
#include <limits>

#include "gym/ops/ops.h"
#include "ops/cpu_workers.h"
#include "ops/simd_math.h"

namespace gym::ops {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#ifdef GYM_SIMD_X86
// p = softmax(x · scale + m) over one row of s floats (m may be null).
__attribute__((target("avx2,fma"))) void softmax_row(const float* x, const float* m, float scale, int64_t s, float* p) {
  const int64_t full = s - s % 8;
  const __m256 sv = _mm256_set1_ps(scale);
  __m256 mx = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < full; i += 8) {
    __m256 z = _mm256_mul_ps(_mm256_loadu_ps(x + i), sv);
    if (m) z = _mm256_add_ps(z, _mm256_loadu_ps(m + i));
    _mm256_storeu_ps(p + i, z);
    mx = _mm256_max_ps(mx, z);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, mx);
  float top = -std::numeric_limits<float>::infinity();
  for (float l : lanes) top = std::max(top, l);
  for (int64_t i = full; i < s; ++i) {
    p[i] = x[i] * scale + (m ? m[i] : 0.0f);
    top = std::max(top, p[i]);
  }
  const __m256 tv = _mm256_set1_ps(top);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < full; i += 8) {
    const __m256 e = simd::exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), tv));
    _mm256_storeu_ps(p + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = simd::hsum8(acc);
  for (int64_t i = full; i < s; ++i) sum += (p[i] = std::exp(p[i] - top));
  const float inv = 1.0f / sum;
  const __m256 iv = _mm256_set1_ps(inv);
  for (int64_t i = 0; i < full; i += 8) _mm256_storeu_ps(p + i, _mm256_mul_ps(_mm256_loadu_ps(p + i), iv));
  for (int64_t i = full; i < s; ++i) p[i] *= inv;
}

// ∂x = (p · (∂p − Σ ∂p·p)) · scale over one row.
__attribute__((target("avx2,fma"))) void softmax_row_backward(const float* p, const float* dp, float scale, int64_t s, float* dx) {
  const int64_t full = s - s % 8;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < full; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(dp + i), _mm256_loadu_ps(p + i), acc);
  float dot = simd::hsum8(acc);
  for (int64_t i = full; i < s; ++i) dot += dp[i] * p[i];
  const __m256 dv = _mm256_set1_ps(dot), sv = _mm256_set1_ps(scale);
  for (int64_t i = 0; i < full; i += 8)
    _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(p + i), _mm256_sub_ps(_mm256_loadu_ps(dp + i), dv)), sv));
  for (int64_t i = full; i < s; ++i) dx[i] = (p[i] * (dp[i] - dot)) * scale;
}
#endif

struct MaskedSoftmaxFunction : torch::autograd::Function<MaskedSoftmaxFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& mask, double scale) {
    auto p = torch::empty_like(x);
#ifdef GYM_SIMD_X86
    const int64_t heads = x.size(1), t = x.size(2), s = x.size(3), rows = x.numel() / s;
    const float* xp = x.data_ptr<float>();
    const float* mp = mask.numel() > 0 ? mask.data_ptr<float>() : nullptr;
    float* pp = p.data_ptr<float>();
    const auto sc = static_cast<float>(scale);
    for_each_row(rows, s, 16, [&](int64_t r) {
      const float* m = mp ? mp + ((r / (heads * t)) * t + r % t) * s : nullptr;   // mask row (b, t)
      softmax_row(xp + r * s, m, sc, s, pp + r * s);
    });
#endif
    ctx->save_for_backward({p});
    ctx->saved_data["scale"] = scale;
    return p;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto p = ctx->get_saved_variables()[0];
    const auto dp = grads[0].contiguous();
    auto dx = torch::empty_like(p);
#ifdef GYM_SIMD_X86
    const int64_t s = p.size(3), rows = p.numel() / s;
    const float* pp = p.data_ptr<float>();
    const float* dpp = dp.data_ptr<float>();
    float* dxp = dx.data_ptr<float>();
    const auto sc = static_cast<float>(ctx->saved_data["scale"].toDouble());
    for_each_row(rows, s, 16, [&](int64_t r) { softmax_row_backward(pp + r * s, dpp + r * s, sc, s, dxp + r * s); });
#endif
    return {dx, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool masked_softmax_applies(const torch::Tensor& scores, const torch::Tensor& mask) {
#ifdef GYM_SIMD_X86
  if (!cpu_has_avx2_fma() || !scores.device().is_cpu() || scores.scalar_type() != torch::kFloat32 || scores.dim() != 4) return false;
  if (scores.numel() == 0 || !scores.is_contiguous()) return false;
  if (!mask.defined()) return true;
  return mask.device().is_cpu() && mask.scalar_type() == torch::kFloat32 && mask.dim() == 4 && mask.size(0) == scores.size(0) &&
         mask.size(1) == 1 && mask.size(2) == scores.size(2) && mask.size(3) == scores.size(3) && !mask.requires_grad();
#else
  (void)scores, (void)mask;
  return false;
#endif
}

torch::Tensor masked_softmax(const torch::Tensor& scores, const torch::Tensor& mask, double scale) {
  // (no mask travels as an empty tensor: the autograd function's arguments must be defined)
  return MaskedSoftmaxFunction::apply(scores, mask.defined() ? mask.contiguous() : torch::empty({0}, scores.options()), scale);
}

torch::Tensor masked_softmax_reference(const torch::Tensor& scores, const torch::Tensor& mask, double scale) {
  auto z = scores * scale;
  if (mask.defined()) z = z + mask;
  return torch::softmax(z, -1, torch::kFloat32);
}

}  // namespace gym::ops
