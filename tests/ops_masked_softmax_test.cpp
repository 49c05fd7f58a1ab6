// Fused attention softmax (ops/masked_softmax.h) against softmax(x · scale + mask) in float64: the
// probabilities and the scores' gradient, rows with and without a tail of 8, a causal mask with
// blocked positions (probability exactly 0) shared by every head, and no mask.
#include "gym/ops/masked_softmax.h"

#include <limits>

#include "gym/ops/ops.h"
#include "ops_test_util.h"

using gym::test::max_abs_diff;
namespace ops = gym::ops;

TEST(OpsMaskedSoftmax, FusedMatchesTheFormulaForwardAndBackward) {
  if (!ops::cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2/FMA: LibTorch's softmax runs";
  torch::manual_seed(41);
  for (int64_t s : {5, 24, 67}) {
    for (bool masked : {true, false}) {
      SCOPED_TRACE("S " + std::to_string(s) + (masked ? ", causal mask" : ", no mask"));
      const int64_t b = 2, h = 3, t = 4;
      auto x0 = torch::randn({b, h, t, s}) * 4;
      torch::Tensor mask;
      if (masked) {   // query i sees keys ≤ s − t + i; batch 1 also has its first key padded
        auto blocked = torch::arange(s).view({1, 1, 1, s}) > (torch::arange(t) + (s - t)).view({1, 1, t, 1});
        blocked = blocked.expand({b, 1, t, s}).clone();
        blocked[1].select(2, 0).fill_(true);
        mask = torch::zeros({b, 1, t, s}).masked_fill(blocked, std::numeric_limits<float>::lowest());
      }
      ASSERT_TRUE(ops::masked_softmax_applies(x0, mask));
      auto dp = torch::randn({b, h, t, s});
      auto x = x0.clone().requires_grad_(true);
      auto p = ops::masked_softmax(x, mask, 0.125);
      p.backward(dp);
      auto x64 = x0.to(torch::kFloat64).requires_grad_(true);
      auto ref = torch::softmax(x64 * 0.125 + (mask.defined() ? mask.to(torch::kFloat64).clamp_min(-1e300) : torch::zeros({1}, torch::kFloat64)), -1);
      ref.backward(dp.to(torch::kFloat64));
      EXPECT_LE(max_abs_diff(p, ref), 1e-6);
      EXPECT_LE(max_abs_diff(x.grad(), x64.grad()), 1e-6);
      EXPECT_GT(x64.grad().abs().max().item<double>(), 0.01);
      if (masked) {
        EXPECT_EQ(p[1][2][0][0].item<float>(), 0.0f);   // the padded key
        EXPECT_EQ(p[0][0][0][s - 1].item<float>(), 0.0f);   // a future key (s > t: query 0 sees keys ≤ s − t)
      }
      EXPECT_LE(max_abs_diff(p, ops::masked_softmax_reference(x0, mask, 0.125)), 1e-6);
    }
  }
}
