// Fused rotary position embedding (include/gym/ops/rotary.h).
#include "gym/ops/rotary.h"

#include <torch/autograd.h>

#include "gym/ops/ops.h"
#include "ops/cpu_workers.h"
#include "ops/simd_math.h"

namespace gym::ops {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Where row r = (b, h, t) of a [B, H, T, D] tensor and of the [B or 1, 1, T, R] tables start.
struct Rows {
  int64_t heads, t, d, r, s0, s1, s2;   // x's strides over B, H, T
  bool tables_per_batch;
  int64_t x(int64_t row) const { return row / (heads * t) * s0 + row / t % heads * s1 + row % t * s2; }
  int64_t table(int64_t row) const { return ((tables_per_batch ? row / (heads * t) * t : 0) + row % t) * r; }
};

Rows rows_of(const torch::Tensor& x, const torch::Tensor& cos) {
  return {x.size(1), x.size(2), x.size(3), cos.size(3), x.stride(0), x.stride(1), x.stride(2), cos.size(0) > 1};
}

#ifdef GYM_SIMD_X86
// One row: out = x·c + rotate_half(x)·s on [0, r), x beyond. Products and sums are rounded one by
// one as LibTorch's mul and add (no FMA; the build has -ffp-contract=off).
__attribute__((target("avx2,fma"))) void rotate_row(const float* x, const float* c, const float* s, int64_t r, int64_t d, float* out) {
  const int64_t h = r / 2;
  int64_t i = 0;
  for (; i + 8 <= h; i += 8) {
    const __m256 x1 = _mm256_loadu_ps(x + i), x2 = _mm256_loadu_ps(x + h + i);
    _mm256_storeu_ps(out + i, _mm256_sub_ps(_mm256_mul_ps(x1, _mm256_loadu_ps(c + i)), _mm256_mul_ps(x2, _mm256_loadu_ps(s + i))));
    _mm256_storeu_ps(out + h + i, _mm256_add_ps(_mm256_mul_ps(x2, _mm256_loadu_ps(c + h + i)), _mm256_mul_ps(x1, _mm256_loadu_ps(s + h + i))));
  }
  for (; i < h; ++i) {
    out[i] = x[i] * c[i] - x[h + i] * s[i];
    out[h + i] = x[h + i] * c[h + i] + x[i] * s[h + i];
  }
  for (i = r; i < d; ++i) out[i] = x[i];
}

// Its gradient: dx[i] = g[i]·c[i] + g[i+h]·s[i+h] (i < h), g[i]·c[i] − g[i−h]·s[i−h] (h ≤ i < r).
__attribute__((target("avx2,fma"))) void rotate_row_backward(const float* g, const float* c, const float* s, int64_t r, int64_t d, float* dx) {
  const int64_t h = r / 2;
  int64_t i = 0;
  for (; i + 8 <= h; i += 8) {
    const __m256 g1 = _mm256_loadu_ps(g + i), g2 = _mm256_loadu_ps(g + h + i);
    _mm256_storeu_ps(dx + i, _mm256_add_ps(_mm256_mul_ps(g1, _mm256_loadu_ps(c + i)), _mm256_mul_ps(g2, _mm256_loadu_ps(s + h + i))));
    _mm256_storeu_ps(dx + h + i, _mm256_sub_ps(_mm256_mul_ps(g2, _mm256_loadu_ps(c + h + i)), _mm256_mul_ps(g1, _mm256_loadu_ps(s + i))));
  }
  for (; i < h; ++i) {
    dx[i] = g[i] * c[i] + g[h + i] * s[h + i];
    dx[h + i] = g[h + i] * c[h + i] - g[i] * s[i];
  }
  for (i = r; i < d; ++i) dx[i] = g[i];
}

// fn(row, offset of the row in `strided`, its cos, its sin, R, D) for every (b, h, t) row, shared with
// the helper threads; the contiguous side of each call is at row · D.
template <typename Fn>
void for_rows(const torch::Tensor& strided, const torch::Tensor& cos, const torch::Tensor& sin, Fn&& fn) {
  const Rows rw = rows_of(strided, cos);
  const float* cp = cos.data_ptr<float>();
  const float* sp = sin.data_ptr<float>();
  for_each_row(strided.numel() / rw.d, rw.d, 256, [&](int64_t row) { fn(row, rw.x(row), cp + rw.table(row), sp + rw.table(row), rw.r, rw.d); });
}
#endif

struct RotaryFunction : torch::autograd::Function<RotaryFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
    auto out = torch::empty(x.sizes(), x.options());   // [B, H, T, D] contiguous
#ifdef GYM_SIMD_X86
    const float* xp = x.data_ptr<float>();
    float* op = out.data_ptr<float>();
    for_rows(x, cos, sin, [&](int64_t row, int64_t at, const float* c, const float* s, int64_t r, int64_t d) {
      rotate_row(xp + at, c, s, r, d, op + row * d);
    });
#endif
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["x_strides"] = x.strides().vec();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &cos = saved[0], &sin = saved[1];
    const auto g = grads[0].contiguous();   // [B, H, T, D]
    // ∂x in the layout of x (a transposed view of the projections' output): the gradient then
    // reaches the per-head norm and the projection as a contiguous [B, T, H, D], without a copy.
    auto dx = torch::empty_strided(g.sizes(), ctx->saved_data["x_strides"].toIntVector(), g.options());
#ifdef GYM_SIMD_X86
    const float* gp = g.data_ptr<float>();
    float* dp = dx.data_ptr<float>();
    for_rows(dx, cos, sin, [&](int64_t row, int64_t at, const float* c, const float* s, int64_t r, int64_t d) {
      rotate_row_backward(gp + row * d, c, s, r, d, dp + at);
    });
#endif
    return {dx, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool rotary_applies(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
#ifdef GYM_SIMD_X86
  if (!cpu_has_avx2_fma() || x.dim() != 4 || cos.dim() != 4 || sin.sizes() != cos.sizes()) return false;
  for (const auto* t : {&x, &cos, &sin})
    if (!t->device().is_cpu() || t->scalar_type() != torch::kFloat32) return false;
  const int64_t r = cos.size(3);
  return x.numel() > 0 && x.stride(3) == 1 && x.is_non_overlapping_and_dense() && cos.is_contiguous() && sin.is_contiguous() &&
         (cos.size(0) == x.size(0) || cos.size(0) == 1) && cos.size(1) == 1 && cos.size(2) == x.size(2) && r % 2 == 0 && r > 0 &&
         r <= x.size(3) && !cos.requires_grad() && !sin.requires_grad();
#else
  (void)x, (void)cos, (void)sin;
  return false;
#endif
}

torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) { return RotaryFunction::apply(x, cos, sin); }

torch::Tensor rotary_reference(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t r = cos.size(-1), d = x.size(-1), h = r / 2;
  auto rot = x.narrow(-1, 0, r);
  auto rotated = torch::cat({-rot.narrow(-1, h, h), rot.narrow(-1, 0, h)}, -1);   // rotate_half
  auto out = rot * cos + rotated * sin;
  return r == d ? out : torch::cat({out, x.narrow(-1, r, d - r)}, -1);
}

}  // namespace gym::ops
