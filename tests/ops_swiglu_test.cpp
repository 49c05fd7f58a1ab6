// Fused SwiGLU (ops/swiglu.h) against silu(g)·u in float64: the product and both gradients, sizes
// with and without a tail of 8 and above one block, large |g| (σ saturated), and one input frozen.
#include "gym/ops/swiglu.h"

#include "gym/ops/ops.h"
#include "ops_test_util.h"

using gym::test::max_abs_diff;
namespace ops = gym::ops;

TEST(OpsSwiglu, FusedMatchesSiluTimesUpForwardAndBackward) {
  if (!ops::cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2/FMA: LibTorch's silu runs";
  torch::manual_seed(31);
  for (int64_t n : {13, 1536, 3 * 4096 + 5}) {
    SCOPED_TRACE("n " + std::to_string(n));
    auto g0 = torch::randn({2, n}) * 3, u0 = torch::randn({2, n});
    g0[0][0] = 60.0f, g0[0][1] = -60.0f;
    auto dh = torch::randn({2, n});
    ASSERT_TRUE(ops::swiglu_applies(g0, u0));
    auto g = g0.clone().requires_grad_(true), u = u0.clone().requires_grad_(true);
    auto h = ops::swiglu(g, u);
    h.backward(dh);
    auto g64 = g0.to(torch::kFloat64).requires_grad_(true), u64 = u0.to(torch::kFloat64).requires_grad_(true);
    auto ref = ops::swiglu_reference(g64, u64);
    ref.backward(dh.to(torch::kFloat64));
    EXPECT_LE(max_abs_diff(h, ref), 1e-5);
    EXPECT_LE(max_abs_diff(g.grad(), g64.grad()), 1e-5);
    EXPECT_LE(max_abs_diff(u.grad(), u64.grad()), 1e-5);
    EXPECT_GT(g64.grad().abs().max().item<double>(), 0.5);
  }
  // only u trained (g frozen): ∂u = silu(g)
  auto g = torch::randn({4, 16}), u = torch::randn({4, 16}).requires_grad_(true);
  ops::swiglu(g, u).sum().backward();
  EXPECT_LE(max_abs_diff(u.grad(), torch::silu(g)), 1e-6);
}
