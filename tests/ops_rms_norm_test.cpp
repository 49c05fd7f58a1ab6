// Fused RMSNorm (ops/rms_norm.h) against the composite formula in float64: forward and the input's
// gradient, rows with and without a tail of 8, a row of zeros (eps alone), and the unit-offset weight.
#include "gym/ops/rms_norm.h"

#include "gym/ops/ops.h"
#include "ops_test_util.h"

using gym::test::max_abs_diff;
namespace ops = gym::ops;

TEST(OpsRmsNorm, FusedMatchesTheFormulaForwardAndBackward) {
  if (!ops::cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2/FMA: the composite formula runs";
  torch::manual_seed(21);
  for (int64_t d : {64, 37, 512}) {
    SCOPED_TRACE("D " + std::to_string(d));
    auto x = torch::randn({3, 5, d}) * 2;
    x[1][2].zero_();
    auto w = torch::randn({d});
    auto g = torch::randn({3, 5, d});
    ASSERT_TRUE(ops::rms_norm_applies(x, w));
    auto xf = x.clone().requires_grad_(true);
    auto y = ops::rms_norm(xf, w, 1e-6);
    (y * g).sum().backward();
    auto x64 = x.to(torch::kFloat64).requires_grad_(true);
    auto ref = ops::rms_norm_reference(x64, w.to(torch::kFloat64), 1e-6);
    (ref * g.to(torch::kFloat64)).sum().backward();
    EXPECT_LE(max_abs_diff(y, ref), 1e-5);
    EXPECT_LE(max_abs_diff(xf.grad(), x64.grad()), 1e-4);
    EXPECT_EQ(y[1][2].abs().max().item<float>(), 0.0f);
    EXPECT_GT(x64.grad().abs().max().item<double>(), 0.5);
    // the same float32 products as the formula: equal to its float32 result within rounding
    EXPECT_LE(max_abs_diff(y, ops::rms_norm_reference(x, w, 1e-6)), 2e-6);
  }
  // a weight that needs its own gradient goes through the formula
  auto w = torch::ones({8}).requires_grad_(true);
  EXPECT_FALSE(ops::rms_norm_applies(torch::randn({2, 8}), w));
}
