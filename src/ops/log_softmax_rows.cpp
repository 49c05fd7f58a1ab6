// Fused CPU rows of selective_log_softmax (src/ops/log_softmax_rows.h).
#include "ops/log_softmax_rows.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "gym/ops/ops.h"
#include "ops/cpu_workers.h"

#include "ops/simd_math.h"

namespace gym::ops {

namespace {

#ifdef GYM_SIMD_X86
using simd::exp8;
using simd::hsum8;
using simd::tail_mask;

// z = x / t for 8 logits (x itself when t is 1: the twin divides).
__attribute__((target("avx2,fma"), always_inline)) inline __m256 scaled8(__m256 x, bool scaled, __m256 t) {
  return scaled ? _mm256_div_ps(x, t) : x;
}

// lse of z = x / t over one row of v floats.
__attribute__((target("avx2,fma"))) float row_lse(const float* x, int64_t v, float t) {
  const bool scaled = t != 1.0f;
  const __m256 tv = _mm256_set1_ps(t);
  const int64_t full = v - v % 8;
  __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < full; i += 8) m = _mm256_max_ps(m, scaled8(_mm256_loadu_ps(x + i), scaled, tv));
  float mx = -std::numeric_limits<float>::infinity();
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  for (float l : lanes) mx = std::max(mx, l);
  for (int64_t i = full; i < v; ++i) mx = std::max(mx, scaled ? x[i] / t : x[i]);
  if (std::isinf(mx)) return mx;   // every logit −inf (lse −inf), or a +inf logit (lse +inf, logp NaN, as the twin)
  const __m256 mv = _mm256_set1_ps(mx);
  __m256 s = _mm256_setzero_ps();
  for (int64_t i = 0; i < full; i += 8) s = _mm256_add_ps(s, exp8(_mm256_sub_ps(scaled8(_mm256_loadu_ps(x + i), scaled, tv), mv)));
  if (full < v) {
    const __m256i on = tail_mask(v - full);
    const __m256 xt = scaled8(_mm256_maskload_ps(x + full, on), scaled, tv);
    s = _mm256_add_ps(s, _mm256_and_ps(_mm256_castsi256_ps(on), exp8(_mm256_sub_ps(xt, mv))));
  }
  return mx + std::log(hsum8(s));
}

// −exp(z − lse) · g / t for 8 logits.
__attribute__((target("avx2,fma"), always_inline)) inline __m256 grad8(__m256 x, bool scaled, __m256 t, __m256 lse, __m256 neg_g) {
  const __m256 d = _mm256_mul_ps(exp8(_mm256_sub_ps(scaled8(x, scaled, t), lse)), neg_g);
  return scaled8(d, scaled, t);
}

// grad row = (1[v = id] − exp(z − lse)) · g / t.
__attribute__((target("avx2,fma"))) void row_grad(const float* x, int64_t v, float t, float lse, float g, int64_t id, float* out) {
  const bool scaled = t != 1.0f;
  // the chosen token, (g − p·g) / t, first: out may be x itself
  const float z = scaled ? x[id] / t : x[id];
  const float d = -std::exp(z - lse) * g + g;
  const __m256 tv = _mm256_set1_ps(t), lv = _mm256_set1_ps(lse), ng = _mm256_set1_ps(-g);
  const int64_t full = v - v % 8;
  for (int64_t i = 0; i < full; i += 8) _mm256_storeu_ps(out + i, grad8(_mm256_loadu_ps(x + i), scaled, tv, lv, ng));
  if (full < v) {
    const __m256i on = tail_mask(v - full);
    _mm256_maskstore_ps(out + full, on, grad8(_mm256_maskload_ps(x + full, on), scaled, tv, lv, ng));
  }
  out[id] = scaled ? d / t : d;
}
#endif


// Row r of [B, T, V] logits (any strides over B and T).
const float* row_of(const torch::Tensor& logits, int64_t r) {
  return logits.data_ptr<float>() + (r / logits.size(1)) * logits.stride(0) + (r % logits.size(1)) * logits.stride(1);
}

}  // namespace

bool log_softmax_rows_apply(const torch::Tensor& logits) {
#ifdef GYM_SIMD_X86
  return cpu_has_avx2_fma() && logits.device().is_cpu() && logits.scalar_type() == torch::kFloat32 && logits.dim() == 3 &&
         logits.size(2) > 0 && logits.stride(2) == 1;
#else
  return false;
#endif
}

void log_softmax_rows_forward(const torch::Tensor& logits, const torch::Tensor& ids, double temperature, torch::Tensor& logp,
                              torch::Tensor& lse) {
#ifdef GYM_SIMD_X86
  const int64_t v = logits.size(2);
  const int64_t* id = ids.data_ptr<int64_t>();
  float* lp = logp.data_ptr<float>();
  float* ls = lse.data_ptr<float>();
  const auto t = static_cast<float>(temperature);
  for_each_row(logits.size(0) * logits.size(1), v, 8, [&](int64_t r) {
    const float* x = row_of(logits, r);
    const float l = row_lse(x, v, t);
    ls[r] = l;
    lp[r] = (t != 1.0f ? x[id[r]] / t : x[id[r]]) - l;
  });
#else
  (void)logits, (void)ids, (void)temperature, (void)logp, (void)lse;
#endif
}

torch::Tensor log_softmax_rows_backward(const torch::Tensor& logits, const torch::Tensor& ids, double temperature, const torch::Tensor& lse,
                                        const torch::Tensor& g_logp, torch::Tensor grad) {
  if (!grad.defined()) grad = torch::empty(logits.sizes(), logits.options().memory_format(c10::MemoryFormat::Contiguous));
#ifdef GYM_SIMD_X86
  const int64_t v = logits.size(2);
  const int64_t* id = ids.data_ptr<int64_t>();
  const float* ls = lse.data_ptr<float>();
  const float* g = g_logp.data_ptr<float>();
  float* out = grad.data_ptr<float>();
  const auto t = static_cast<float>(temperature);
  for_each_row(logits.size(0) * logits.size(1), v, 8, [&](int64_t r) { row_grad(row_of(logits, r), v, t, ls[r], g[r], id[r], out + r * v); });
#else
  (void)ids, (void)temperature, (void)lse, (void)g_logp;
#endif
  return grad;
}

}  // namespace gym::ops
