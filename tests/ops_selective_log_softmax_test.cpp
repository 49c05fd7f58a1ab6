// Selective log-softmax op: CPU twin vs the float64 full-softmax reference (forward and backward,
// with entropy), the policy-loss vectors' log-probs and entropies, bf16 input, strides, errors; and
// the CUDA kernel vs the twin where a GPU is present.
#include "gym/ops/selective_log_softmax.h"

#include <limits>

#include "gym/core/error.h"
#include "ops_test_util.h"

using gym::test::max_abs_diff;
namespace ops = gym::ops;

namespace {

struct Grads {
  ops::TokenLogprobs out;
  torch::Tensor grad;
};

// Σ logp·wl + Σ H·wh, backward; returns the outputs and ∂/∂logits.
Grads run(const torch::Tensor& base, const torch::Tensor& ids, double t, const torch::Tensor& wl, const torch::Tensor& wh,
          bool reference, ops::Impl impl = ops::Impl::Auto) {
  auto logits = base.detach().clone().requires_grad_(true);
  auto out = reference ? ops::selective_log_softmax_reference(logits, ids, t, true) : ops::selective_log_softmax(logits, ids, t, true, impl);
  ((out.logp * wl.to(out.logp.dtype())).sum() + (out.entropy * wh.to(out.entropy.dtype())).sum()).backward();
  return {out, logits.grad()};
}

}  // namespace

TEST(OpsSelectiveLogSoftmax, TwinMatchesReferenceForwardAndBackward) {
  torch::manual_seed(11);
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    SCOPED_TRACE(c10::toString(dtype));
    const double tol = dtype == torch::kFloat64 ? 1e-12 : 2e-5;
    auto logits = (torch::randn({3, 7, 50}, torch::kFloat64) * 3).to(dtype);
    auto ids = torch::randint(0, 50, {3, 7}, torch::kInt64);
    auto wl = torch::randn({3, 7}, torch::kFloat64), wh = torch::randn({3, 7}, torch::kFloat64);
    auto twin = run(logits, ids, 0.7, wl, wh, false);
    auto ref = run(logits, ids, 0.7, wl, wh, true);
    EXPECT_EQ(twin.out.logp.scalar_type(), dtype);
    EXPECT_EQ(twin.grad.scalar_type(), dtype);
    EXPECT_LE(max_abs_diff(twin.out.logp, ref.out.logp), tol);
    EXPECT_LE(max_abs_diff(twin.out.entropy, ref.out.entropy), tol);
    EXPECT_LE(max_abs_diff(twin.grad, ref.grad), tol);
    EXPECT_GT(ref.grad.abs().max().item<double>(), 0.1);   // the check is not vacuous
  }
}

// The fused CPU rows (float32 log-probs without entropy, ops/log_softmax_rows.cpp) against the twin
// and the float64 reference: vocabularies with and without a tail of 8, temperature 1 and not, rows
// of a strided view, a −inf logit (probability exactly 0, gradient exactly 0) and a peaked row.
TEST(OpsSelectiveLogSoftmax, FusedCpuRowsMatchTwinAndReference) {
  if (!ops::cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2/FMA: the twin runs";
  torch::manual_seed(13);
  for (int64_t v : {8, 61, 32000}) {
    for (double t : {1.0, 0.7}) {
      SCOPED_TRACE("V " + std::to_string(v) + ", T " + std::to_string(t));
      auto wide = torch::randn({3, 9, v}) * 4;
      wide[0][1][v / 2] = 40.0f;                                                // a peaked row
      wide[1][2][0] = -std::numeric_limits<float>::infinity();                 // a token that cannot be drawn
      auto logits = wide.narrow(1, 1, 7);                                      // [3, 7, V], row stride 9·V
      auto ids = torch::randint(0, v, {3, 7}, torch::kInt64);
      ids[0][0] = v / 2;
      ids[1][1] = v - 1;   // (not the −inf token: its log-prob is −inf on every path)
      auto wl = torch::randn({3, 7});
      auto grad_of = [&](bool twin, ops::TokenLogprobs* out) {
        auto x = logits.detach().clone().requires_grad_(true);
        *out = twin ? ops::selective_log_softmax(x, ids, t, false, ops::Impl::Twin) : ops::selective_log_softmax(x, ids, t);
        (out->logp * wl).sum().backward();
        return x.grad();
      };
      ops::TokenLogprobs fused, twin;
      auto g_fused = grad_of(false, &fused), g_twin = grad_of(true, &twin);
      auto x64 = logits.to(torch::kFloat64).requires_grad_(true);
      auto ref = ops::selective_log_softmax_reference(x64, ids, t);
      (ref.logp * wl.to(torch::kFloat64)).sum().backward();
      EXPECT_EQ(fused.logp.scalar_type(), torch::kFloat32);
      EXPECT_LE(max_abs_diff(fused.logp, ref.logp), 2e-5);
      EXPECT_LE(max_abs_diff(fused.logp, twin.logp), 2e-5);
      // (|z| reaches 57 at T 0.7: float32 z − lse carries ~4e-6, times gradients up to |g| / T ≈ 3)
      EXPECT_LE(max_abs_diff(g_fused, x64.grad()), 2e-5);
      EXPECT_LE(max_abs_diff(g_fused, g_twin), 2e-5);
      EXPECT_EQ(g_fused[1][1][0].item<float>(), 0.0f);   // the −inf logit (row 2 of the view is row 1)
      EXPECT_GT(x64.grad().abs().max().item<double>(), 0.1);
    }
  }
}

TEST(OpsSelectiveLogSoftmax, PolicyLossVectorsLogprobsAndEntropies) {
  const auto& v = gym::test::policy_loss_vectors();
  auto logits = gym::test::json_tensor(v["inputs"]["logits"]);
  auto ids = gym::test::json_tensor(v["inputs"]["completion_ids"]).to(torch::kInt64);
  const double t = v["meta"]["temperature"].get<double>();
  auto out = ops::selective_log_softmax(logits, ids, t, true);
  EXPECT_LE(max_abs_diff(out.logp, gym::test::json_tensor(v["derived"]["per_token_logps"])), 1e-12);
  EXPECT_LE(max_abs_diff(out.entropy, gym::test::json_tensor(v["derived"]["entropies"])), 1e-12);
}

TEST(OpsSelectiveLogSoftmax, NonContiguousFlatAndLogpOnlyGradients) {
  torch::manual_seed(12);
  auto base = torch::randn({2, 6, 33}, torch::kFloat64);
  auto ids = torch::randint(0, 33, {2, 5}, torch::kInt64);
  auto wl = torch::randn({2, 5}, torch::kFloat64);
  // [:, :-1] is a strided view: the gradient lands in the right rows and the last row gets zero.
  auto a = base.clone().requires_grad_(true);
  (ops::selective_log_softmax(a.narrow(1, 0, 5), ids, 1.3).logp * wl).sum().backward();
  auto b = base.clone().requires_grad_(true);
  (ops::selective_log_softmax_reference(b.narrow(1, 0, 5), ids, 1.3).logp * wl).sum().backward();
  EXPECT_LE(max_abs_diff(a.grad(), b.grad()), 1e-12);
  EXPECT_EQ(a.grad().narrow(1, 5, 1).abs().max().item<double>(), 0.0);
  // [N, V] with ids [N] gives [N]
  auto flat = ops::selective_log_softmax(base.view({12, 33}), ids.new_zeros({12}), 1.0, true);
  ASSERT_EQ(flat.logp.sizes(), torch::IntArrayRef({12}));
  EXPECT_LE(max_abs_diff(flat.logp, torch::log_softmax(base.view({12, 33}), -1).select(1, 0)), 1e-12);
  EXPECT_FALSE(ops::selective_log_softmax(base, torch::zeros({2, 6}, torch::kInt64)).entropy.defined());
}

TEST(OpsSelectiveLogSoftmax, Bfloat16LogitsComputeInFloat32) {
  torch::manual_seed(13);
  auto bf = (torch::randn({2, 4, 64}) * 4).to(torch::kBFloat16);
  auto ids = torch::randint(0, 64, {2, 4}, torch::kInt64);
  auto wl = torch::randn({2, 4}, torch::kFloat64), wh = torch::randn({2, 4}, torch::kFloat64);
  auto twin = run(bf, ids, 0.9, wl, wh, false);
  auto ref = run(bf, ids, 0.9, wl, wh, true);   // the same bf16 values, float64 math
  EXPECT_EQ(twin.out.logp.scalar_type(), torch::kFloat32);
  EXPECT_EQ(twin.out.entropy.scalar_type(), torch::kFloat32);
  EXPECT_EQ(twin.grad.scalar_type(), torch::kBFloat16);
  EXPECT_LE(max_abs_diff(twin.out.logp, ref.out.logp), 1e-5);   // float32 math, not bf16
  EXPECT_LE(max_abs_diff(twin.out.entropy, ref.out.entropy), 1e-5);
  EXPECT_LE(max_abs_diff(twin.grad, ref.grad.to(torch::kBFloat16)), 1e-2);   // one bf16 rounding of the result
}

TEST(OpsSelectiveLogSoftmax, BadInputsAreClearErrors) {
  auto logits = torch::randn({2, 3, 5});
  auto ids = torch::zeros({2, 3}, torch::kInt64);
  EXPECT_THROW(ops::selective_log_softmax(logits, torch::full({2, 3}, 5, torch::kInt64)), gym::Error);
  EXPECT_THROW(ops::selective_log_softmax(logits, torch::full({2, 3}, -1, torch::kInt64)), gym::Error);
  EXPECT_THROW(ops::selective_log_softmax(logits, ids.narrow(1, 0, 2)), gym::Error);
  EXPECT_THROW(ops::selective_log_softmax(logits, ids, 0.0), gym::Error);
  EXPECT_THROW(ops::selective_log_softmax(logits.to(torch::kInt32), ids), gym::Error);
}

TEST(OpsSelectiveLogSoftmaxCuda, KernelMatchesTwinFloat32AndBfloat16) {
  GYM_REQUIRE_CUDA_KERNELS();
  torch::manual_seed(14);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    // V not a multiple of the block size; a strided [:, :-1] view as the trainer passes it.
    auto full = (torch::randn({3, 9, 1003}) * 3).to(dtype).to(torch::kCUDA);
    auto base = full.narrow(1, 0, 8);
    auto ids = torch::randint(0, 1003, {3, 8}, torch::kInt64).to(torch::kCUDA);
    auto wl = torch::randn({3, 8}, torch::kFloat64).to(torch::kCUDA), wh = torch::randn({3, 8}, torch::kFloat64).to(torch::kCUDA);
    auto kernel = run(base, ids, 0.8, wl, wh, false, ops::Impl::Auto);
    auto twin = run(base, ids, 0.8, wl, wh, false, ops::Impl::Twin);
    auto cpu = run(base.cpu(), ids.cpu(), 0.8, wl.cpu(), wh.cpu(), false);
    EXPECT_TRUE(kernel.out.logp.is_cuda());
    EXPECT_EQ(kernel.grad.scalar_type(), dtype);
    EXPECT_LE(max_abs_diff(kernel.out.logp, twin.out.logp), 1e-5);
    EXPECT_LE(max_abs_diff(kernel.out.entropy, twin.out.entropy), 1e-5);
    EXPECT_LE(max_abs_diff(kernel.out.logp, cpu.out.logp), 1e-5);
    EXPECT_LE(max_abs_diff(kernel.grad, twin.grad), dtype == torch::kFloat32 ? 1e-6 : 1e-2);
  }
}
