// Decode attention kernel (include/gym/ops/decode_attention.h).
#include "gym/ops/decode_attention.h"
#include "gym/ops/ops.h"

#include <torch/autograd.h>

#include <cmath>
#include <limits>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define GYM_DECODE_ATTN_X86 1
#endif

namespace gym::ops {

namespace {

#ifdef GYM_DECODE_ATTN_X86
__attribute__((target("avx2,fma"))) inline float dot(const float* a, const float* b, int64_t d) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  __m128 lo = _mm256_castps256_ps128(acc), hi = _mm256_extractf128_ps(acc, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  float s = _mm_cvtss_f32(lo);
  for (; i < d; ++i) s += a[i] * b[i];
  return s;
}

// out[0:d] += p · v[0:d]
__attribute__((target("avx2,fma"))) inline void axpy(float p, const float* v, float* out, int64_t d) {
  const __m256 pv = _mm256_set1_ps(p);
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) _mm256_storeu_ps(out + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + i), _mm256_loadu_ps(out + i)));
  for (; i < d; ++i) out[i] += p * v[i];
}

__attribute__((target("avx2,fma"))) void kernel(const float* q, const float* k, const float* v, const float* mask, float* out,
                                                int64_t b_size, int64_t nh, int64_t nkv, int64_t cap, int64_t len, int64_t d,
                                                float scale) {
  const int64_t groups = nh / nkv;
  std::vector<float> scores(static_cast<size_t>(len));
  for (int64_t b = 0; b < b_size; ++b)
    for (int64_t h = 0; h < nh; ++h) {
      const float* qv = q + (b * nh + h) * d;
      const int64_t kvh = h / groups;
      const float* kb = k + (b * nkv + kvh) * cap * d;
      const float* vb = v + (b * nkv + kvh) * cap * d;
      const float* mb = mask ? mask + b * len : nullptr;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s < len; ++s) {
        float x = dot(qv, kb + s * d, d) * scale;
        if (mb) x += mb[s];
        scores[static_cast<size_t>(s)] = x;
        mx = std::max(mx, x);
      }
      float sum = 0;
      for (int64_t s = 0; s < len; ++s) sum += (scores[static_cast<size_t>(s)] = std::exp(scores[static_cast<size_t>(s)] - mx));
      const float inv = 1.0f / sum;
      float* o = out + (b * nh + h) * d;
      for (int64_t i = 0; i < d; ++i) o[i] = 0;
      for (int64_t s = 0; s < len; ++s) axpy(scores[static_cast<size_t>(s)] * inv, vb + s * d, o, d);
    }
}

#endif

bool cpu_f32(const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat32; }

}  // namespace

bool decode_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& mask) {
  if (!cpu_has_avx2_fma() || !cpu_f32(q) || !cpu_f32(k) || !cpu_f32(v)) return false;
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || q.size(2) != 1 || !k.is_contiguous() || !v.is_contiguous()) return false;
  if (k.sizes() != v.sizes() || q.size(0) != k.size(0) || q.size(3) != k.size(3) || k.size(1) == 0 || q.size(1) % k.size(1) != 0) return false;
  if (mask.defined() && (!cpu_f32(mask) || mask.dim() != 4 || mask.size(0) != q.size(0) || mask.size(1) != 1 || mask.size(2) != 1))
    return false;
  if (torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad())) return false;
  return true;
}

torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t length,
                               const torch::Tensor& mask, double scale) {
#ifdef GYM_DECODE_ATTN_X86
  const int64_t b = q.size(0), nh = q.size(1), d = q.size(3), nkv = k.size(1), cap = k.size(2);
  auto qc = q.contiguous();
  torch::Tensor mc;
  if (mask.defined()) mc = mask.expand({b, 1, 1, length}).contiguous();
  auto out = torch::empty({b, nh, 1, d}, q.options());
  kernel(qc.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), mc.defined() ? mc.data_ptr<float>() : nullptr,
         out.data_ptr<float>(), b, nh, nkv, cap, length, d, static_cast<float>(scale));
  return out;
#else
  return decode_attention_reference(q, k, v, length, mask, scale);
#endif
}

torch::Tensor decode_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t length,
                                         const torch::Tensor& mask, double scale) {
  const int64_t groups = q.size(1) / k.size(1);
  auto kk = k.narrow(2, 0, length).repeat_interleave(groups, 1);
  auto vv = v.narrow(2, 0, length).repeat_interleave(groups, 1);
  auto scores = torch::matmul(q, kk.transpose(-1, -2)) * scale;
  if (mask.defined()) scores = scores + mask;
  return torch::matmul(torch::softmax(scores, -1, torch::kFloat32), vv);
}

}  // namespace gym::ops
