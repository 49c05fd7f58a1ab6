// Fused RMSNorm rows (include/gym/ops/rms_norm.h).
#include "gym/ops/rms_norm.h"

#include <torch/autograd.h>

#include <cmath>

#include "gym/ops/ops.h"
#include "ops/cpu_workers.h"

#include "ops/simd_math.h"

namespace gym::ops {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#ifdef GYM_SIMD_X86
using simd::hsum8;

// Σ a·b over d floats (8 lanes, then the tail).
__attribute__((target("avx2,fma"))) float dot(const float* a, const float* b, int64_t d) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float s = hsum8(acc);
  for (; i < d; ++i) s += a[i] * b[i];
  return s;
}

// y = (x · r) · w for one row; returns r.
__attribute__((target("avx2,fma"))) float norm_row(const float* x, const float* w, int64_t d, float eps, float* y) {
  const float r = 1.0f / std::sqrt(dot(x, x, d) / static_cast<float>(d) + eps);
  const __m256 rv = _mm256_set1_ps(r);
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), rv), _mm256_loadu_ps(w + i)));
  for (; i < d; ++i) y[i] = (x[i] * r) * w[i];
  return r;
}

// ∂x = r·(g·w) − x·(r³ · Σ(g·w·x) / d) for one row.
__attribute__((target("avx2,fma"))) void norm_row_backward(const float* x, const float* w, const float* g, float r, int64_t d, float* dx) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= d; i += 8)
    acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(g + i), _mm256_loadu_ps(w + i)), _mm256_loadu_ps(x + i), acc);
  float s = hsum8(acc);
  for (; i < d; ++i) s += g[i] * w[i] * x[i];
  const float c = r * r * r * s / static_cast<float>(d);
  const __m256 rv = _mm256_set1_ps(r), cv = _mm256_set1_ps(c);
  for (i = 0; i + 8 <= d; i += 8) {
    const __m256 gw = _mm256_mul_ps(_mm256_loadu_ps(g + i), _mm256_loadu_ps(w + i));
    _mm256_storeu_ps(dx + i, _mm256_fnmadd_ps(_mm256_loadu_ps(x + i), cv, _mm256_mul_ps(gw, rv)));
  }
  for (; i < d; ++i) dx[i] = r * (g[i] * w[i]) - x[i] * c;
}
#endif


struct RmsNormFunction : torch::autograd::Function<RmsNormFunction> {
  // x [..., D] contiguous, w [D] contiguous → y [..., D]; saves x and r [rows].
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w, double eps) {
    const int64_t d = x.size(-1), rows = x.numel() / d;
    auto y = torch::empty_like(x);
    auto r = torch::empty({rows}, x.options());
#ifdef GYM_SIMD_X86
    const float* xp = x.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    float* rp = r.data_ptr<float>();
    const auto e = static_cast<float>(eps);
    for_each_row(rows, d, 64, [&](int64_t i) { rp[i] = norm_row(xp + i * d, wp, d, e, yp + i * d); });
#endif
    ctx->save_for_backward({x, w, r});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &r = saved[2];
    const auto g = grads[0].contiguous();
    auto dx = torch::empty_like(x);
#ifdef GYM_SIMD_X86
    const int64_t d = x.size(-1), rows = x.numel() / d;
    const float* xp = x.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    const float* rp = r.data_ptr<float>();
    float* dp = dx.data_ptr<float>();
    for_each_row(rows, d, 64, [&](int64_t i) { norm_row_backward(xp + i * d, wp, gp + i * d, rp[i], d, dp + i * d); });
#endif
    return {dx, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool rms_norm_applies(const torch::Tensor& x, const torch::Tensor& w) {
#ifdef GYM_SIMD_X86
  if (!cpu_has_avx2_fma() || !x.device().is_cpu() || !w.device().is_cpu()) return false;
  if (x.scalar_type() != torch::kFloat32 || w.scalar_type() != torch::kFloat32 || x.dim() < 1 || w.dim() != 1) return false;
  if (x.size(-1) != w.size(0) || x.size(-1) == 0 || x.numel() == 0) return false;
  return !(torch::GradMode::is_enabled() && w.requires_grad());
#else
  (void)x, (void)w;
  return false;
#endif
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return RmsNormFunction::apply(x.contiguous(), w.contiguous(), eps);
}

torch::Tensor rms_norm_reference(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  auto xf = x.to(torch::kFloat32);
  return w * (xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps)).to(x.scalar_type());
}

}  // namespace gym::ops
