// Small-M linear kernel (include/gym/ops/small_m_linear.h).
#include "gym/ops/small_m_linear.h"
#include "gym/ops/ops.h"

#include <torch/autograd.h>
#include <torch/nn/functional/linear.h>

#include <algorithm>

#include "ops/cpu_workers.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define GYM_SMALL_M_X86 1
#endif

namespace gym::ops {

namespace {

#ifdef GYM_SMALL_M_X86
__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  return _mm_cvtss_f32(lo);
}

// Σ_j t[j]·b[j] over the LoRA rank r (8 lanes at a time, then the tail).
__attribute__((target("avx2,fma"), always_inline)) inline float rank_dot(const float* t, const float* b, int64_t r) {
  int64_t j = 0;
  float s = 0.0f;
  if (r >= 8) {
    __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(t), _mm256_loadu_ps(b));
    for (j = 8; j + 8 <= r; j += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(t + j), _mm256_loadu_ps(b + j), acc);
    s = hsum(acc);
  }
  for (; j < r; ++j) s += t[j] * b[j];
  return s;
}

// The LoRA term of a fused call: y += scaling · t[m] · b[o] for the rows of x (t [M, r], b [N, r]).
struct LoraTerm {
  const float* t = nullptr;   // null: no LoRA term
  const float* b = nullptr;
  int64_t r = 0;
  float scaling = 0.0f;
};

// Output rows o and o + 1 of w [n, k] (w1 == w0 when only o is left), the next pair prefetched, and
// their LoRA term (b offset to row o).
struct Pair {
  bool two;
  const float* w0;
  const float* w1;
  LoraTerm lora;
};
__attribute__((target("avx2,fma"), always_inline)) inline Pair pair_at(const float* w, int64_t n, int64_t k, int64_t o, const LoraTerm& lora) {
  Pair p{o + 1 < n, w + o * k, nullptr, lora};
  p.w1 = p.two ? p.w0 + k : p.w0;
  if (o + 3 < n)
    for (int64_t i = 0; i < 2 * k; i += 16) _mm_prefetch(reinterpret_cast<const char*>(p.w0 + 2 * k + i), _MM_HINT_T0);
  if (p.lora.t) p.lora.b = lora.b + o * lora.r;
  return p;
}

// The LoRA term of the row block that starts at row `first`.
inline LoraTerm rows_from(const LoraTerm& lora, int64_t first) {
  LoraTerm r = lora;
  if (r.t) r.t = lora.t + first * lora.r;
  return r;
}

// Row m of a block: the two outputs' lane sums s0, s1 plus the K tail from index i and the LoRA
// term, stored (the second only when there are two).
__attribute__((target("avx2,fma"), always_inline)) inline void finish_pair(float s0, float s1, const float* x, int64_t k, int64_t i,
                                                                          const float* w0, const float* w1, float* y, int64_t ldy, bool two,
                                                                          const LoraTerm& lora, int m) {
  for (int64_t j = i; j < k; ++j) s0 += x[m * k + j] * w0[j], s1 += x[m * k + j] * w1[j];
  if (lora.t) {
    const float* tm = lora.t + m * lora.r;
    s0 += lora.scaling * rank_dot(tm, lora.b, lora.r);
    if (two) s1 += lora.scaling * rank_dot(tm, lora.b + lora.r, lora.r);
  }
  y[m * ldy] = s0;
  if (two) y[m * ldy + 1] = s1;
}

// y[m, o], y[m, o + 1] for MB rows of x against weight rows w0, w1 (w1 == w0 when only one is left),
// plus the LoRA term of those outputs when lora.t is set (t and y offset to the block's first row,
// b to output o).
template <int MB>
__attribute__((target("avx2,fma"), always_inline)) inline void two_rows(const float* x, int64_t k, const float* w0, const float* w1,
                                                                       float* y, int64_t ldy, bool two, const LoraTerm& lora) {
  __m256 a0[MB], a1[MB];
  for (int m = 0; m < MB; ++m) a0[m] = _mm256_setzero_ps(), a1[m] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    const __m256 v0 = _mm256_loadu_ps(w0 + i), v1 = _mm256_loadu_ps(w1 + i);
    for (int m = 0; m < MB; ++m) {
      const __m256 xv = _mm256_loadu_ps(x + m * k + i);
      a0[m] = _mm256_fmadd_ps(xv, v0, a0[m]);
      a1[m] = _mm256_fmadd_ps(xv, v1, a1[m]);
    }
  }
  for (int m = 0; m < MB; ++m) finish_pair(hsum(a0[m]), hsum(a1[m]), x, k, i, w0, w1, y, ldy, two, lora, m);
}

// y [M, N] (row stride ldy) = x [M, K] · w [N, K]ᵀ, x and w contiguous. Each pair of weight rows is
// read from memory once (prefetched two rows ahead) and reused from L1 for every block of x's rows.
// With a LoRA term (t [M, r] for these rows, b [n, r] for these outputs) each output also gets
// scaling · t[m]·b[o], added after the row's dot product.
__attribute__((target("avx2,fma"))) void kernel(const float* x, int64_t m_rows, int64_t k, const float* w, int64_t n, float* y,
                                                int64_t ldy, const LoraTerm& lora = {}) {
  for (int64_t o = 0; o < n; o += 2) {
    const Pair p = pair_at(w, n, k, o, lora);
    int64_t m = 0;
    for (; m + 4 <= m_rows; m += 4) two_rows<4>(x + m * k, k, p.w0, p.w1, y + m * ldy + o, ldy, p.two, rows_from(p.lora, m));
    for (; m + 2 <= m_rows; m += 2) two_rows<2>(x + m * k, k, p.w0, p.w1, y + m * ldy + o, ldy, p.two, rows_from(p.lora, m));
    for (; m < m_rows; ++m) two_rows<1>(x + m * k, k, p.w0, p.w1, y + m * ldy + o, ldy, p.two, rows_from(p.lora, m));
  }
}

// The same products with AVX-512: one zmm holds the two outputs' 8-lane partial sums (w0 in lanes
// 0-7, w1 in 8-15) and x's 8 values broadcast to both halves, so every lane runs the FMA sequence of
// two_rows(): each half's horizontal sum, the tail and the LoRA term are the AVX2 path's, bit for
// bit (OpsSmallMLinear.Avx512EqualsAvx2BitForBit), with half the FMA instructions.
template <int MB>
__attribute__((target("avx512f,avx512dq,avx2,fma"), always_inline)) inline void two_rows_512(const float* x, int64_t k, const float* w0,
                                                                                         const float* w1, float* y, int64_t ldy, bool two,
                                                                                         const LoraTerm& lora) {
  __m512 acc[MB];
  for (int m = 0; m < MB; ++m) acc[m] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    // (the masked forms with zero sources: GCC 12 warns about the undefined ones inside the plain intrinsics)
    const __m512 w01 = _mm512_insertf32x8(_mm512_insertf32x8(_mm512_setzero_ps(), _mm256_loadu_ps(w0 + i), 0), _mm256_loadu_ps(w1 + i), 1);
    for (int m = 0; m < MB; ++m)
      acc[m] = _mm512_fmadd_ps(_mm512_mask_broadcast_f32x8(_mm512_setzero_ps(), 0xFFFF, _mm256_loadu_ps(x + m * k + i)), w01, acc[m]);
  }
  const __m256 zero = _mm256_setzero_ps();
  for (int m = 0; m < MB; ++m)
    finish_pair(hsum(_mm512_mask_extractf32x8_ps(zero, 0xFF, acc[m], 0)), hsum(_mm512_mask_extractf32x8_ps(zero, 0xFF, acc[m], 1)), x, k, i,
                w0, w1, y, ldy, two, lora, m);
}

__attribute__((target("avx512f,avx512dq,avx2,fma"))) void kernel_512(const float* x, int64_t m_rows, int64_t k, const float* w, int64_t n,
                                                                     float* y, int64_t ldy, const LoraTerm& lora) {
  for (int64_t o = 0; o < n; o += 2) {
    const Pair p = pair_at(w, n, k, o, lora);
    int64_t m = 0;
    for (; m + 8 <= m_rows; m += 8) two_rows_512<8>(x + m * k, k, p.w0, p.w1, y + m * ldy + o, ldy, p.two, rows_from(p.lora, m));
    for (; m + 4 <= m_rows; m += 4) two_rows_512<4>(x + m * k, k, p.w0, p.w1, y + m * ldy + o, ldy, p.two, rows_from(p.lora, m));
    for (; m < m_rows; ++m) two_rows_512<1>(x + m * k, k, p.w0, p.w1, y + m * ldy + o, ldy, p.two, rows_from(p.lora, m));
  }
}


#endif

}  // namespace

torch::Tensor small_m_linear_reference(const torch::Tensor& x, const torch::Tensor& w) { return torch::nn::functional::linear(x, w); }

bool small_m_linear_applies(const torch::Tensor& x, const torch::Tensor& w) {
  if (!cpu_has_avx2_fma()) return false;
  if (!x.device().is_cpu() || !w.device().is_cpu() || x.scalar_type() != torch::kFloat32 || w.scalar_type() != torch::kFloat32) return false;
  if (w.dim() != 2 || x.dim() < 1 || x.size(-1) != w.size(1) || x.size(-1) == 0) return false;
  if (torch::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad())) return false;
  const int64_t rows = x.numel() / x.size(-1);
  return rows >= 1 && rows <= kSmallMRows;
}

namespace {

#ifdef GYM_SMALL_M_X86
// The kernel over all of w's output rows; t/b (defined or not) carry the LoRA term.
torch::Tensor run_kernel(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& t, const torch::Tensor& b, double scaling,
                         bool allow_avx512) {
  const auto kern = allow_avx512 && cpu_has_avx512() ? kernel_512 : kernel;
  const int64_t k = x.size(-1), n = w.size(0), rows = x.numel() / k;
  auto xc = x.contiguous();
  auto wc = w.contiguous();
  auto sizes = x.sizes().vec();
  sizes.back() = n;
  auto y = torch::empty(sizes, x.options());
  const float* xp = xc.data_ptr<float>();
  const float* wp = wc.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  torch::Tensor tc, bc;
  LoraTerm lora;
  if (t.defined()) {
    tc = t.contiguous(), bc = b.contiguous();
    lora = {tc.data_ptr<float>(), bc.data_ptr<float>(), b.size(1), static_cast<float>(scaling)};
  }
  // Decoding streams the weights: above ~256 KB of them the output rows are split into even-sized
  // chunks shared with the helper threads (ops/cpu_workers.h). Every output element is computed
  // by the same code on any thread, so the result does not depend on the split.
  const int64_t threads = cpu_worker_threads();
  if (threads == 1 || n * k < (int64_t{1} << 16) || n < 64) {
    kern(xp, rows, k, wp, n, yp, n, lora);
  } else {
    const int64_t per = std::max<int64_t>(32, (n / (threads * 8) + 1) & ~int64_t{1});   // rows per chunk, even
    parallel_chunks((n + per - 1) / per, [&](int64_t c) {
      const int64_t o = c * per;
      LoraTerm part = lora;
      if (part.t) part.b = lora.b + o * lora.r;
      kern(xp, rows, k, wp + o * k, std::min(per, n - o), yp + o, n, part);
    });
  }
  return y;
}
#endif

}  // namespace

torch::Tensor small_m_linear(const torch::Tensor& x, const torch::Tensor& w, bool allow_avx512) {
#ifdef GYM_SMALL_M_X86
  return run_kernel(x, w, {}, {}, 0.0, allow_avx512);
#else
  return small_m_linear_reference(x, w);
#endif
}

torch::Tensor small_m_linear_lora(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b,
                                  double scaling, bool allow_avx512) {
#ifdef GYM_SMALL_M_X86
  auto t = small_m_linear(x, a, allow_avx512);   // [..., r]
  return run_kernel(x, w, t.reshape({-1, a.size(0)}), b, scaling, allow_avx512);
#else
  return small_m_linear_lora_reference(x, w, a, b, scaling);
#endif
}

bool small_m_linear_lora_applies(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b) {
  if (!small_m_linear_applies(x, w) || !small_m_linear_applies(x, a)) return false;
  if (b.dim() != 2 || b.scalar_type() != torch::kFloat32 || !b.device().is_cpu() || b.size(0) != w.size(0) || b.size(1) != a.size(0)) return false;
  return !(torch::GradMode::is_enabled() && b.requires_grad());
}

torch::Tensor small_m_linear_lora_reference(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b,
                                            double scaling) {
  auto y = small_m_linear_reference(x, w);
  const auto out = y.size(-1);
  auto t = small_m_linear_reference(x, a);
  return torch::addmm(y.reshape({-1, out}), t.reshape({-1, t.size(-1)}), b.t(), 1.0, scaling).view(y.sizes());
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w) {
  return small_m_linear_applies(x, w) ? small_m_linear(x, w) : small_m_linear_reference(x, w);
}

}  // namespace gym::ops
