// Fused rotary embedding (ops/rotary.h): bit-identical to the LibTorch formula forward and backward
// (the transformers fixture tests depend on it), the formula itself against float64 values, the
// attention's layouts (x a transposed view of [B, T, H, D]; tables per batch or shared), partial
// rotary (R < D, Qwen3-Next), a half that is not a multiple of 8, and ∂x in the layout of x.
#include "gym/ops/rotary.h"

#include "gym/ops/ops.h"
#include "ops_test_util.h"

using gym::test::max_abs_diff;
namespace ops = gym::ops;

namespace {

// cos/sin tables as RotaryEmbedding::tables builds them: [B or 1, 1, T, R], the two halves equal.
std::pair<torch::Tensor, torch::Tensor> tables(int64_t batch, int64_t t, int64_t r) {
  auto pos = torch::arange(t, torch::kFloat32).view({1, t, 1}).expand({batch, t, 1}) + torch::arange(batch, torch::kFloat32).view({batch, 1, 1}) * 7;
  auto inv = 1.0 / torch::pow(10000.0, torch::arange(0, r, 2, torch::kFloat32) / static_cast<float>(r));
  auto freqs = pos * inv.view({1, 1, -1});
  auto emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos().unsqueeze(1).contiguous(), emb.sin().unsqueeze(1).contiguous()};
}

}  // namespace

TEST(OpsRotary, FusedIsBitIdenticalToTheFormulaForwardAndBackward) {
  if (!ops::cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2: LibTorch's ops run";
  torch::manual_seed(17);
  struct Case {
    int64_t b, h, t, d, r, table_batch;
  };
  for (const Case& c : {Case{2, 3, 37, 64, 64, 2}, Case{1, 4, 20, 128, 32, 1}, Case{3, 2, 9, 24, 20, 3}}) {
    SCOPED_TRACE("B " + std::to_string(c.b) + " H " + std::to_string(c.h) + " T " + std::to_string(c.t) + " D " + std::to_string(c.d) +
                 " R " + std::to_string(c.r));
    auto [cos, sin] = tables(c.table_batch, c.t, c.r);
    auto base = torch::randn({c.b, c.t, c.h, c.d}) * 3;   // the projection's layout; x is its transposed view
    auto g = torch::randn({c.b, c.h, c.t, c.d});

    auto x = base.clone().requires_grad_(true);
    auto xv = x.transpose(1, 2);
    ASSERT_TRUE(ops::rotary_applies(xv, cos, sin));
    auto out = ops::rotary(xv, cos, sin);
    EXPECT_TRUE(out.is_contiguous());
    out.backward(g);

    auto x_ref = base.clone().requires_grad_(true);
    auto ref = ops::rotary_reference(x_ref.transpose(1, 2), cos, sin);
    ref.backward(g);
    EXPECT_TRUE(torch::equal(out, ref)) << max_abs_diff(out, ref);
    EXPECT_TRUE(torch::equal(x.grad(), x_ref.grad())) << max_abs_diff(x.grad(), x_ref.grad());
    EXPECT_TRUE(x.grad().is_contiguous());   // ∂x came back in x's layout: [B, T, H, D] contiguous

    // The formula against float64: rotation of pairs (i, i + R/2), the tail unchanged.
    auto x64 = base.transpose(1, 2).to(torch::kFloat64);
    const int64_t half = c.r / 2;
    auto c64 = cos.to(torch::kFloat64), s64 = sin.to(torch::kFloat64);
    auto x1 = x64.narrow(-1, 0, half), x2 = x64.narrow(-1, half, half);
    auto want = torch::cat({x1 * c64.narrow(-1, 0, half) - x2 * s64.narrow(-1, 0, half),
                            x2 * c64.narrow(-1, half, half) + x1 * s64.narrow(-1, half, half), x64.narrow(-1, c.r, c.d - c.r)},
                           -1);
    EXPECT_LE(max_abs_diff(out, want), 1e-5);
    EXPECT_GT(want.abs().max().item<double>(), 3.0);
  }
}

TEST(OpsRotary, RefusesWhatItDoesNotHandle) {
  if (!ops::cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2: never applies";
  auto [cos, sin] = tables(2, 5, 8);
  EXPECT_TRUE(ops::rotary_applies(torch::zeros({2, 3, 5, 8}), cos, sin));
  EXPECT_FALSE(ops::rotary_applies(torch::zeros({2, 3, 5, 6}), cos, sin));                       // R > D
  EXPECT_FALSE(ops::rotary_applies(torch::zeros({2, 3, 5, 8}, torch::kFloat64), cos, sin));      // dtype
  EXPECT_FALSE(ops::rotary_applies(torch::zeros({2, 3, 8, 5}).transpose(2, 3), cos, sin));       // D strided
  EXPECT_FALSE(ops::rotary_applies(torch::zeros({3, 3, 5, 8}), cos, sin));                       // table batch 2 vs 3
}
