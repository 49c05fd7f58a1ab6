// Categorical sampling by a fast exponential race (include/gym/ops/sample.h).
#include "gym/ops/sample.h"

#include <ATen/CPUGeneratorImpl.h>

#include <limits>
#include <mutex>
#include <vector>

#include "gym/core/error.h"
#include "gym/ops/ops.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define GYM_SAMPLE_X86 1
#endif

namespace gym::ops {

namespace {

#ifdef GYM_SAMPLE_X86
// A 32-bit integer hash per lane (two rounds of xorshift-multiply: "lowbias32", C. Wellons).
__attribute__((target("avx2"), always_inline)) inline __m256i mix(__m256i x) {
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7feb352d));
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32(static_cast<int>(0x846ca68bu)));
  return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}

// -log(u) for u in (0, 1): u = m · 2^e with m in [√½, √2), log(m) by Cephes' logf polynomial
// (relative error ~1e-7). Plain multiplies and adds, so every lane rounds the same way.
__attribute__((target("avx2"), always_inline)) inline __m256 neg_log(__m256 u) {
  const __m256i bits = _mm256_castps_si256(u);
  __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127)));
  __m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x3f800000)));
  const __m256 big = _mm256_cmp_ps(m, _mm256_set1_ps(1.41421356f), _CMP_GT_OQ);
  m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), big);
  e = _mm256_add_ps(e, _mm256_and_ps(big, _mm256_set1_ps(1.0f)));
  const __m256 f = _mm256_sub_ps(m, _mm256_set1_ps(1.0f));
  const __m256 z = _mm256_mul_ps(f, f);
  static const float c[] = {7.0376836292e-2f, -1.1514610310e-1f, 1.1676998740e-1f, -1.2420140846e-1f, 1.4249322787e-1f,
                            -1.6668057665e-1f, 2.0000714765e-1f, -2.4999993993e-1f, 3.3333331174e-1f};
  __m256 y = _mm256_set1_ps(c[0]);
  for (int i = 1; i < 9; ++i) y = _mm256_add_ps(_mm256_mul_ps(y, f), _mm256_set1_ps(c[i]));
  y = _mm256_mul_ps(_mm256_mul_ps(y, f), z);
  y = _mm256_add_ps(y, _mm256_mul_ps(e, _mm256_set1_ps(-2.12194440e-4f)));
  y = _mm256_sub_ps(y, _mm256_mul_ps(z, _mm256_set1_ps(0.5f)));
  __m256 x = _mm256_add_ps(f, y);
  x = _mm256_add_ps(x, _mm256_mul_ps(e, _mm256_set1_ps(0.693359375f)));
  return _mm256_sub_ps(_mm256_setzero_ps(), x);
}

// E for the 8 entries from index v: u = (h >> 9 + ½) · 2⁻²³ in (0, 1), h = hash(hash(v ^ k0) ^ k1).
// 23 bits: j + ½ is exact in float32 for j < 2²³ (with 24, 2²⁴ - ½ rounds up to 2²⁴ and u to 1).
__attribute__((target("avx2"), always_inline)) inline __m256 exponentials(int64_t v, __m256i k0, __m256i k1) {
  const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(v)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i h = mix(_mm256_xor_si256(mix(_mm256_xor_si256(idx, k0)), k1));
  const __m256 u = _mm256_mul_ps(_mm256_add_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(h, 9)), _mm256_set1_ps(0.5f)), _mm256_set1_ps(1.0f / 8388608.0f));
  return neg_log(u);
}

struct Keys {
  __m256i k0, k1;
};
__attribute__((target("avx2"))) Keys split(uint64_t key) {
  return {_mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(key))), _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(key >> 32)))};
}

// argmax_v p[v] / E_v (the first on ties); -1 when an entry is negative, NaN or infinite, -2 when all
// are zero. The last partial block is read from a zero-padded copy (a zero never wins a race that
// has a positive entry, and ties go to the lower index).
__attribute__((target("avx2"))) int64_t race_row(const float* p, int64_t n, uint64_t key) {
  const Keys k = split(key);
  __m256 best = _mm256_set1_ps(-1.0f);
  __m256i best_idx = _mm256_set1_epi32(0);
  __m256 bad = _mm256_setzero_ps();   // lanes that saw an entry outside [0, inf)
  __m256 any = _mm256_setzero_ps();   // lanes that saw a positive entry
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  alignas(32) float tail[8];
  for (int64_t v = 0; v < n; v += 8) {
    const float* src = p + v;
    if (v + 8 > n) {
      for (int64_t i = 0; i < 8; ++i) tail[i] = v + i < n ? p[v + i] : 0.0f;
      src = tail;
    }
    const __m256 pv = _mm256_loadu_ps(src);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(pv, _mm256_setzero_ps(), _CMP_NGE_UQ));   // < 0 or NaN
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(pv, inf, _CMP_EQ_OQ));
    any = _mm256_or_ps(any, _mm256_cmp_ps(pv, _mm256_setzero_ps(), _CMP_GT_OQ));
    const __m256 r = _mm256_div_ps(pv, exponentials(v, k.k0, k.k1));
    const __m256 gt = _mm256_cmp_ps(r, best, _CMP_GT_OQ);
    best = _mm256_blendv_ps(best, r, gt);
    const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(v)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    best_idx = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(best_idx), _mm256_castsi256_ps(idx), gt));
  }
  if (_mm256_movemask_ps(bad)) return -1;
  if (!_mm256_movemask_ps(any)) return -2;
  alignas(32) float bv[8];
  alignas(32) int32_t bi[8];
  _mm256_store_ps(bv, best);
  _mm256_store_si256(reinterpret_cast<__m256i*>(bi), best_idx);
  int lane = 0;
  for (int i = 1; i < 8; ++i)
    if (bv[i] > bv[lane] || (bv[i] == bv[lane] && bi[i] < bi[lane])) lane = i;
  return bi[lane];
}

__attribute__((target("avx2"))) void fill_exponentials(uint64_t key, int64_t n, float* out) {
  const Keys k = split(key);
  alignas(32) float e[8];
  for (int64_t v = 0; v < n; v += 8) {
    _mm256_store_ps(e, exponentials(v, k.k0, k.k1));
    for (int64_t i = 0; i < 8 && v + i < n; ++i) out[v + i] = e[i];
  }
}
#endif

}  // namespace

torch::Tensor sample_categorical(const torch::Tensor& probs, at::Generator generator) {
#ifdef GYM_SAMPLE_X86
  const bool fast = cpu_has_avx2_fma() && probs.device().is_cpu() && probs.scalar_type() == torch::kFloat32 && probs.dim() == 2 &&
                    probs.size(1) > 0 && probs.size(1) < (int64_t{1} << 31) && generator.device().is_cpu();
  if (fast) {
    const auto p = probs.contiguous();
    const int64_t rows = p.size(0), n = p.size(1);
    std::vector<uint64_t> keys(static_cast<size_t>(rows));
    {
      auto* gen = at::check_generator<at::CPUGeneratorImpl>(generator);
      std::lock_guard<std::mutex> lock(gen->mutex_);
      for (auto& k : keys) k = gen->random64();
    }
    auto out = torch::empty({rows}, torch::TensorOptions().dtype(torch::kInt64));
    auto* o = out.data_ptr<int64_t>();
    const float* pp = p.data_ptr<float>();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t t = race_row(pp + r * n, n, keys[static_cast<size_t>(r)]);
      if (t == -1) runtime_error("sampling: probability tensor contains either inf, nan or element < 0");
      if (t == -2) runtime_error("sampling: invalid multinomial distribution (sum of probabilities <= 0)");
      o[r] = t;
    }
    return out;
  }
#endif
  return torch::multinomial(probs, 1, false, generator).squeeze(1);
}

torch::Tensor race_exponentials(uint64_t key, int64_t n) {
  auto out = torch::empty({n}, torch::kFloat32);
#ifdef GYM_SAMPLE_X86
  if (cpu_has_avx2_fma()) {
    fill_exponentials(key, n, out.data_ptr<float>());
    return out;
  }
#endif
  runtime_error("race_exponentials: needs an x86-64 CPU with AVX2");
}

}  // namespace gym::ops
