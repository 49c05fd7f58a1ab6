// The policy-loss vectors through the ops on the GPU: float32 logits against the fixture's losses,
// weights and gradients; bfloat16 logits against the float64 CPU reference of the same rounded logits.
// Skipped without a GPU or without the kernels.
#include "gym/ops/policy_objective.h"
#include "gym/ops/selective_log_softmax.h"
#include "ops_test_util.h"

using gym::test::json_tensor;
using gym::test::max_abs_diff;
namespace ops = gym::ops;

namespace {

struct CaseOut {
  double loss;
  torch::Tensor ratio, grad;
};

// One TRL case (β = 0) through selective_log_softmax → clipped_policy_objective on `device`.
CaseOut run_case(const nlohmann::json& c, const torch::Tensor& logits_in, torch::Device device, ops::Impl impl) {
  const auto& v = gym::test::policy_loss_vectors();
  const auto& in = v["inputs"];
  const auto& cfg = c["config"];
  const auto& meta = v["meta"];
  auto ids = json_tensor(in["completion_ids"]).to(torch::kInt64).to(device);
  auto mask = json_tensor(in["completion_mask"]).to(device, torch::kFloat32);
  auto old = json_tensor(in["old_per_token_logps"]).to(device, torch::kFloat32);
  auto adv = json_tensor(v["derived"]["advantages_trl_group"]).to(device, torch::kFloat32);
  auto t = gym::test::trl_case_options(cfg, meta);
  t.objective.impl = impl;
  auto logits = logits_in.to(device).detach().requires_grad_(true);
  auto logp = ops::selective_log_softmax(logits, ids, meta["temperature"].get<double>(), false, impl).logp;
  auto out = ops::clipped_policy_objective(logp, cfg["on_policy"].get<bool>() ? logp.detach() : old.to(logp.dtype()), adv, mask,
                                           ops::sequence_weights(mask, t.aggregation, t.params), t.objective);
  out.loss.backward();
  return {out.loss.item<double>(), out.ratio.cpu(), logits.grad().cpu()};
}

}  // namespace

TEST(OpsCudaFixtures, PolicyLossVectorsFloat32AndBfloat16OnTheGpu) {
  GYM_REQUIRE_CUDA_KERNELS();
  const auto& v = gym::test::policy_loss_vectors();
  const auto logits64 = json_tensor(v["inputs"]["logits"]);
  int checked = 0;
  for (const auto& c : v["cases"]) {
    const auto& cfg = c["config"];
    if (cfg.value("framework", "") != "trl" || cfg["beta"].get<double>() != 0.0) continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    // float32 logits on the GPU vs the float64 fixture
    auto f32 = run_case(c, logits64.to(torch::kFloat32), torch::kCUDA, ops::Impl::Auto);
    const double want = c["loss"].get<double>();
    EXPECT_LE(std::abs(f32.loss - want), 1e-5 * std::abs(want) + 1e-7);
    EXPECT_LE(max_abs_diff(f32.ratio, json_tensor(c["importance_weight"])), 1e-5);
    EXPECT_LE(max_abs_diff(f32.grad, json_tensor(c["grad_logits"])), 1e-5);
    // bfloat16 logits: the kernels' float32 math vs the float64 CPU path on the same rounded values
    auto bf = logits64.to(torch::kBFloat16);
    auto gpu = run_case(c, bf, torch::kCUDA, ops::Impl::Auto);
    auto cpu = run_case(c, bf.to(torch::kFloat64), torch::kCPU, ops::Impl::Auto);
    EXPECT_LE(std::abs(gpu.loss - cpu.loss), 1e-5 * std::abs(cpu.loss) + 1e-7);
    EXPECT_LE(max_abs_diff(gpu.ratio, cpu.ratio), 1e-5);
    EXPECT_LE(max_abs_diff(gpu.grad, cpu.grad.to(torch::kBFloat16)), 2e-3);   // the gradient is returned in bf16
    ++checked;
  }
  EXPECT_GE(checked, 9);
}
