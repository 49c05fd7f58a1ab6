// The chunked LM head + cross-entropy (include/gym/ops/linear_cross_entropy.h) against its
// reference (linear, float32 cross-entropy, autograd): the summed loss and the gradient with
// respect to h over several chunks, in float32 and bfloat16; no gradient buffer under no_grad.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gym/ops/linear_cross_entropy.h"

namespace ops = gym::ops;

TEST(OpsLinearCrossEntropy, LossAndGradientMatchTheReferenceOverSeveralChunks) {
  torch::manual_seed(12);
  const int64_t k = 800, hid = 48, v = 50000;   // 335 rows per chunk: 3 chunks, the last partial
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    auto w = (torch::randn({v, hid}) * 0.3).to(dtype);
    auto h0 = torch::randn({k, hid}).to(dtype);
    auto targets = torch::randint(0, v, {k}, torch::kInt64);
    auto h = h0.clone().requires_grad_(true), hr = h0.clone().requires_grad_(true);
    auto got = ops::linear_cross_entropy(h, w, targets);
    auto ref = ops::linear_cross_entropy_reference(hr, w, targets);
    EXPECT_EQ(got.scalar_type(), torch::kFloat32);
    EXPECT_NEAR(got.item<double>(), ref.item<double>(), 2e-6 * std::abs(ref.item<double>()));
    (got * 0.5).backward();
    (ref * 0.5).backward();
    ASSERT_EQ(h.grad().scalar_type(), dtype);
    const double tol = dtype == torch::kFloat32 ? 1e-6 : 2e-2;
    const double scale = hr.grad().abs().max().item<double>();
    EXPECT_LE((h.grad().to(torch::kFloat32) - hr.grad().to(torch::kFloat32)).abs().max().item<double>(), tol * scale);
    // the gradient is not trivially zero or the reference's by accident: a wrong target changes it
    EXPECT_GT(scale, 1e-3);
  }
}

TEST(OpsLinearCrossEntropy, NoGradAndFrozenHeadRules) {
  auto w = torch::randn({100, 8}), h = torch::randn({5, 8}, torch::requires_grad());
  auto t = torch::tensor({0, 99, 5, 5, 42}, torch::kInt64);
  {
    torch::NoGradGuard ng;
    auto l = ops::linear_cross_entropy(h, w, t);
    EXPECT_FALSE(l.requires_grad());
    EXPECT_NEAR(l.item<double>(), ops::linear_cross_entropy_reference(h, w, t).item<double>(), 1e-5);
  }
  EXPECT_THROW(ops::linear_cross_entropy(h, w.clone().requires_grad_(true), t), std::exception);   // a trained head: not fused
  EXPECT_THROW(ops::linear_cross_entropy(h, w, t.narrow(0, 0, 4)), std::exception);
}
