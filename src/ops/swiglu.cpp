// Fused SwiGLU (include/gym/ops/swiglu.h).
#include "gym/ops/swiglu.h"

#include <torch/autograd.h>

#include <cmath>

#include "gym/ops/ops.h"
#include "ops/cpu_workers.h"
#include "ops/simd_math.h"

namespace gym::ops {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Work is split in blocks of this many floats (a row of the flattened tensors).
constexpr int64_t kBlock = 4096;

#ifdef GYM_SIMD_X86
// σ(g) for 8 lanes: 1 / (1 + exp(−g)).
__attribute__((target("avx2,fma"), always_inline)) inline __m256 sigmoid8(__m256 g) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, simd::exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
}

__attribute__((target("avx2,fma"))) void forward_block(const float* g, const float* u, float* h, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    _mm256_storeu_ps(h + i, _mm256_mul_ps(_mm256_mul_ps(gv, sigmoid8(gv)), _mm256_loadu_ps(u + i)));
  }
  for (; i < n; ++i) h[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

__attribute__((target("avx2,fma"))) void backward_block(const float* g, const float* u, const float* dh, float* dg, float* du, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i), s = sigmoid8(gv), d = _mm256_loadu_ps(dh + i);
    if (du) _mm256_storeu_ps(du + i, _mm256_mul_ps(d, _mm256_mul_ps(gv, s)));
    if (dg) {
      const __m256 ds = _mm256_mul_ps(s, _mm256_fmadd_ps(gv, _mm256_sub_ps(one, s), one));   // σ(1 + g(1 − σ))
      _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(u + i)), ds));
    }
  }
  for (; i < n; ++i) {
    const float s = 1.0f / (1.0f + std::exp(-g[i]));
    if (du) du[i] = dh[i] * (g[i] * s);
    if (dg) dg[i] = dh[i] * u[i] * (s * (1.0f + g[i] * (1.0f - s)));
  }
}
#endif

// fn(first, count) over blocks of n floats, shared with the helper threads.
template <typename Fn>
void for_blocks(int64_t n, Fn&& fn) {
  for_each_row((n + kBlock - 1) / kBlock, kBlock, 4, [&](int64_t b) { fn(b * kBlock, std::min(kBlock, n - b * kBlock)); });
}

struct SwigluFunction : torch::autograd::Function<SwigluFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& g, const torch::Tensor& u) {
    auto h = torch::empty_like(g);
#ifdef GYM_SIMD_X86
    const float* gp = g.data_ptr<float>();
    const float* up = u.data_ptr<float>();
    float* hp = h.data_ptr<float>();
    for_blocks(g.numel(), [&](int64_t first, int64_t n) { forward_block(gp + first, up + first, hp + first, n); });
#endif
    ctx->save_for_backward({g, u});
    return h;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &g = saved[0], &u = saved[1];
    const auto dh = grads[0].contiguous();
    const bool want_g = ctx->needs_input_grad(0), want_u = ctx->needs_input_grad(1);
    torch::Tensor dg = want_g ? torch::empty_like(g) : torch::Tensor(), du = want_u ? torch::empty_like(u) : torch::Tensor();
#ifdef GYM_SIMD_X86
    const float* gp = g.data_ptr<float>();
    const float* up = u.data_ptr<float>();
    const float* dp = dh.data_ptr<float>();
    float* dgp = want_g ? dg.data_ptr<float>() : nullptr;
    float* dup = want_u ? du.data_ptr<float>() : nullptr;
    for_blocks(g.numel(), [&](int64_t first, int64_t n) {
      backward_block(gp + first, up + first, dp + first, dgp ? dgp + first : nullptr, dup ? dup + first : nullptr, n);
    });
#endif
    return {dg, du};
  }
};

}  // namespace

bool swiglu_applies(const torch::Tensor& g, const torch::Tensor& u) {
#ifdef GYM_SIMD_X86
  return cpu_has_avx2_fma() && g.device().is_cpu() && u.device().is_cpu() && g.scalar_type() == torch::kFloat32 &&
         u.scalar_type() == torch::kFloat32 && g.sizes() == u.sizes() && g.numel() > 0;
#else
  (void)g, (void)u;
  return false;
#endif
}

torch::Tensor swiglu(const torch::Tensor& g, const torch::Tensor& u) { return SwigluFunction::apply(g.contiguous(), u.contiguous()); }

torch::Tensor swiglu_reference(const torch::Tensor& g, const torch::Tensor& u) { return torch::silu(g) * u; }

}  // namespace gym::ops
