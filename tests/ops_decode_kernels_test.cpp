// The decoding kernels vs their references: the small-M linear (at::linear, OpenBLAS) on every
// row-block remainder, odd and tiny inner sizes, views, 3-D input and its dispatch rules; decode
// attention (matmul + softmax + matmul) with GQA, a padding mask and spare cache capacity.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gym/ops/decode_attention.h"
#include "gym/ops/small_m_linear.h"

#include <cmath>
#include <limits>
#include <tuple>

namespace ops = gym::ops;

TEST(OpsSmallMLinear, KernelMatchesReferenceOnEveryShape) {
  torch::manual_seed(3);
  torch::NoGradGuard ng;
  for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 13, 16})
    for (int64_t k : {1, 7, 8, 9, 64, 513})
      for (int64_t n : {1, 2, 5, 64, 129}) {
        SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n));
        auto x = torch::randn({m, k}), w = torch::randn({n, k});
        auto ref = ops::small_m_linear_reference(x.to(torch::kFloat64), w.to(torch::kFloat64));
        auto got = ops::small_m_linear(x, w);
        ASSERT_EQ(got.sizes(), ref.sizes());
        // float32 rounding of a k-term dot product: |err| ≤ ~k·eps·Σ|x·w|
        const double bound = 4e-7 * static_cast<double>(k) * (x.abs().to(torch::kFloat64).mm(w.abs().to(torch::kFloat64).t())).max().item<double>();
        EXPECT_LE((got.to(torch::kFloat64) - ref).abs().max().item<double>(), bound + 1e-6);
      }
}

TEST(OpsSmallMLinear, ViewsAndLeadingDimsAndDispatch) {
  torch::manual_seed(4);
  torch::NoGradGuard ng;
  auto big = torch::randn({2, 3, 40});
  auto x = big.narrow(-1, 3, 32);   // non-contiguous [2, 3, 32]
  auto w = torch::randn({10, 32});
  ASSERT_TRUE(ops::small_m_linear_applies(x, w));
  auto got = ops::linear(x, w);
  EXPECT_EQ(got.sizes(), (std::vector<int64_t>{2, 3, 10}));
  EXPECT_LE((got - ops::small_m_linear_reference(x, w)).abs().max().item<double>(), 1e-5);
  // beyond kSmallMRows rows, float64, or a gradient to track: the reference path
  EXPECT_FALSE(ops::small_m_linear_applies(torch::randn({ops::kSmallMRows + 1, 32}), w));
  EXPECT_FALSE(ops::small_m_linear_applies(x.to(torch::kFloat64), w.to(torch::kFloat64)));
}

TEST(OpsSmallMLinear, GradientsFallBackToTheReference) {
  auto x = torch::randn({4, 16}, torch::requires_grad());
  auto w = torch::randn({8, 16});
  EXPECT_FALSE(ops::small_m_linear_applies(x, w));
  ops::linear(x, w).sum().backward();
  EXPECT_LE((x.grad() - w.sum(0).expand({4, 16})).abs().max().item<double>(), 1e-5);
}

TEST(OpsDecodeAttention, KernelMatchesReferenceWithGqaMaskAndSpareCapacity) {
  torch::manual_seed(5);
  torch::NoGradGuard ng;
  for (auto [nh, nkv, d] : {std::tuple<int64_t, int64_t, int64_t>{8, 4, 64}, {4, 4, 16}, {6, 2, 12}}) {
    const int64_t b = 3, cap = 40, len = 29;
    auto q = torch::randn({b, 1, nh, d}).transpose(1, 2);   // [B, nh, 1, D] as attention passes it
    auto k = torch::randn({b, nkv, cap, d}), v = torch::randn({b, nkv, cap, d});
    auto mask = torch::zeros({b, 1, 1, len});
    mask[1].narrow(-1, 0, 5).fill_(std::numeric_limits<float>::lowest());   // left padding of row 1
    for (bool masked : {false, true}) {
      auto m = masked ? mask : torch::Tensor();
      ASSERT_TRUE(ops::decode_attention_applies(q, k, v, m));
      auto got = ops::decode_attention(q, k, v, len, m, 1.0 / std::sqrt(static_cast<double>(d)));
      auto ref = ops::decode_attention_reference(q, k, v, len, m, 1.0 / std::sqrt(static_cast<double>(d)));
      ASSERT_EQ(got.sizes(), ref.sizes());
      EXPECT_LE((got - ref).abs().max().item<double>(), 2e-6) << nh << " " << nkv << " " << d;
    }
  }
}
