// The fused clipped policy objective: CPU twin vs the autograd reference for every ratio level and
// option, the sequence log-ratio and aggregation weights by hand, the TRL policy-loss vectors
// computed through the ops alone; and the CUDA kernel vs the twin where a GPU is present.
#include "gym/ops/policy_objective.h"

#include <cmath>

#include "gym/core/error.h"
#include "gym/ops/selective_log_softmax.h"
#include "ops_test_util.h"

using gym::test::json_tensor;
using gym::test::max_abs_diff;
namespace ops = gym::ops;

namespace {

struct Batch {
  torch::Tensor logp, old, adv, adv_tok, mask, weight;
};

// B = 6, T = 5, lengths 5,3,1,0,4,2; log-ratios of ±0.3 so that some tokens and sequences clip.
Batch make_batch(torch::Device device = torch::kCPU, torch::ScalarType dtype = torch::kFloat64) {
  torch::manual_seed(21);
  Batch b;
  auto o = torch::TensorOptions().dtype(torch::kFloat64);
  b.logp = -torch::rand({6, 5}, o) * 3;
  b.old = b.logp + torch::randn({6, 5}, o) * 0.3;
  b.adv = torch::tensor({1.0, -0.5, 0.8, 0.3, -1.2, 0.0}, o);
  b.adv_tok = torch::randn({6, 5}, o);
  b.mask = (torch::arange(5, o).unsqueeze(0) < torch::tensor({5.0, 3.0, 1.0, 0.0, 4.0, 2.0}, o).unsqueeze(1)).to(torch::kFloat64);
  b.weight = torch::rand({6}, o) + 0.5;
  for (auto* t : {&b.logp, &b.old, &b.adv, &b.adv_tok, &b.mask, &b.weight}) *t = t->to(device, dtype);
  return b;
}

struct Run {
  ops::PolicyObjective out;
  torch::Tensor grad;
};
Run run(const Batch& b, const torch::Tensor& adv, const ops::PolicyObjectiveOptions& o, bool reference) {
  auto logp = b.logp.clone().requires_grad_(true);
  auto out = reference ? ops::clipped_policy_objective_reference(logp, b.old, adv, b.mask, b.weight, o)
                       : ops::clipped_policy_objective(logp, b.old, adv, b.mask, b.weight, o);
  (out.loss * 1.7).backward();
  return {out, logp.grad()};
}

std::vector<std::pair<std::string, ops::PolicyObjectiveOptions>> option_grid() {
  std::vector<std::pair<std::string, ops::PolicyObjectiveOptions>> grid;
  for (auto level : {ops::RatioLevel::Token, ops::RatioLevel::Sequence, ops::RatioLevel::SequenceToken}) {
    const std::string l = std::to_string(static_cast<int>(level));
    ops::PolicyObjectiveOptions o;
    o.level = level;
    grid.push_back({"level" + l + " eps 0.2", o});
    o.eps_low = 0.05;
    o.eps_high = 0.08;
    grid.push_back({"level" + l + " eps 0.05/0.08", o});
    o.delta = 1.1;
    grid.push_back({"level" + l + " delta 1.1", o});
    o.delta.reset();
    o.dual_clip = 1.05;
    o.log_ratio_min = -0.2;
    o.log_ratio_max = 0.15;
    grid.push_back({"level" + l + " dual clip, log-ratio clamp", o});
  }
  return grid;
}

}  // namespace

TEST(OpsPolicyObjective, TwinMatchesAutogradReferenceOnEveryLevelAndOption) {
  const auto b = make_batch();
  int clipped_cases = 0;
  for (const auto& [name, o] : option_grid()) {
    for (bool per_token : {false, true}) {
      SCOPED_TRACE(name + (per_token ? ", advantages [B, T]" : ", advantages [B]"));
      const auto& adv = per_token ? b.adv_tok : b.adv;
      auto twin = run(b, adv, o, false), ref = run(b, adv, o, true);
      EXPECT_LE(std::abs(twin.out.loss.item<double>() - ref.out.loss.item<double>()), 1e-12);
      EXPECT_LE(max_abs_diff(twin.out.seq_loss, ref.out.seq_loss), 1e-12);
      ASSERT_EQ(twin.out.ratio.sizes(), ref.out.ratio.sizes());
      EXPECT_LE(max_abs_diff(twin.out.ratio, ref.out.ratio), 1e-12);
      EXPECT_LE(max_abs_diff(twin.grad, ref.grad), 1e-12);
      EXPECT_EQ(twin.grad.narrow(0, 3, 1).abs().max().item<double>(), 0.0);   // the empty sequence
      const double lo = 1 - o.eps_low, hi = 1 + o.eps_high;
      clipped_cases += ((ref.out.ratio < lo) | (ref.out.ratio > hi)).any().item<bool>();
    }
  }
  EXPECT_GT(clipped_cases, 10);   // the grid exercises the clipped branches
}

TEST(OpsPolicyObjective, SequenceLogRatioAndItsGradientByHand) {
  auto logp = torch::tensor({{-1.0, -2.0, -3.0}, {-0.5, -0.5, -9.0}}, torch::kFloat64).requires_grad_(true);
  auto old = torch::tensor({{-1.5, -1.0, -3.0}, {-0.25, -1.0, 0.0}}, torch::kFloat64);
  auto mask = torch::tensor({{1.0, 1.0, 1.0}, {1.0, 1.0, 0.0}}, torch::kFloat64);
  auto s = ops::sequence_log_ratio(logp, old, mask);
  EXPECT_NEAR(s[0].item<double>(), (0.5 - 1.0 + 0.0) / 3, 1e-15);
  EXPECT_NEAR(s[1].item<double>(), (-0.25 + 0.5) / 2, 1e-15);
  (s * torch::tensor({2.0, 4.0}, torch::kFloat64)).sum().backward();
  EXPECT_LE(max_abs_diff(logp.grad(), torch::tensor({{2.0 / 3, 2.0 / 3, 2.0 / 3}, {2.0, 2.0, 0.0}}, torch::kFloat64)), 1e-15);
}

TEST(OpsPolicyObjective, GspoRatioIsGeometricMeanAndClipsPerSequence) {
  // One sequence of two tokens with log-ratios 0.3 and 0.1: s = exp(0.2) > 1.2 and A > 0 → clipped,
  // the loss is −1.2·A·(weight·2 tokens) and the gradient is zero.
  auto logp = torch::tensor({{0.3, 0.1}}, torch::kFloat64).requires_grad_(true);
  ops::PolicyObjectiveOptions o;
  auto out = ops::clipped_policy_objective(logp, torch::zeros({1, 2}, torch::kFloat64), torch::tensor({2.0}, torch::kFloat64),
                                           torch::ones({1, 2}, torch::kFloat64), torch::tensor({0.5}, torch::kFloat64), o);
  EXPECT_NEAR(out.ratio.item<double>(), std::exp(0.2), 1e-15);
  EXPECT_NEAR(out.loss.item<double>(), -1.2 * 2.0 * 0.5 * 2, 1e-12);
  out.loss.backward();
  EXPECT_EQ(logp.grad().abs().max().item<double>(), 0.0);
  // A < 0 keeps the unclipped branch: ℓ = −s·A per token, ∂/∂logp_t = −A·s·w·(2 tokens)/2.
  auto logp2 = logp.detach().clone().requires_grad_(true);
  auto neg = ops::clipped_policy_objective(logp2, torch::zeros({1, 2}, torch::kFloat64), torch::tensor({-2.0}, torch::kFloat64),
                                           torch::ones({1, 2}, torch::kFloat64), torch::tensor({0.5}, torch::kFloat64), o);
  EXPECT_NEAR(neg.loss.item<double>(), 2.0 * std::exp(0.2) * 0.5 * 2, 1e-12);
  neg.loss.backward();
  EXPECT_NEAR(logp2.grad()[0][0].item<double>(), 2.0 * std::exp(0.2) * 0.5, 1e-12);
}

TEST(OpsPolicyObjective, AggregationWeightsByHand) {
  auto mask = torch::tensor({{1.0, 1.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0}, {1.0, 1.0, 1.0, 0.0}}, torch::kFloat64);   // n = 2, 0, 3
  auto w = [&](ops::Aggregation a, ops::AggregationParams p = {}) { return ops::sequence_weights(mask, a, p); };
  auto near = [](const torch::Tensor& got, std::vector<double> want) {
    EXPECT_LE(max_abs_diff(got, torch::tensor(want, torch::kFloat64)), 1e-15) << got;
  };
  ops::AggregationParams ga2;
  ga2.grad_accum = 2;
  ga2.max_completion_length = 8;
  near(w(ops::Aggregation::TrlGrpo, ga2), {1.0 / (2 * 3 * 2), 1.0 / (1 * 3 * 2), 1.0 / (3 * 3 * 2)});
  near(w(ops::Aggregation::TrlBnpo, ga2), {0.1, 0.1, 0.1});
  near(w(ops::Aggregation::TrlDrGrpo, ga2), {1.0 / 48, 1.0 / 48, 1.0 / 48});
  ops::AggregationParams dapo;
  dapo.num_items_in_batch = 20;
  dapo.num_processes = 4;
  near(w(ops::Aggregation::TrlDapo, dapo), {0.2, 0.2, 0.2});
  near(w(ops::Aggregation::TrlDapo), {0.2, 0.2, 0.2});   // local count 5
  near(w(ops::Aggregation::VerlTokenMean), {0.2, 0.2, 0.2});
  near(w(ops::Aggregation::VerlSeqMeanTokenSum), {0.5, 0.0, 0.5});
  near(w(ops::Aggregation::VerlSeqMeanTokenMean), {0.5 / (2 + 1e-8), 0.0, 0.5 / (3 + 1e-8)});
  near(w(ops::Aggregation::VerlSeqMeanTokenSumNorm), {0.25, 0.25, 0.25});
  ops::AggregationParams bad;
  bad.grad_accum = 0;
  EXPECT_THROW(w(ops::Aggregation::TrlGrpo, bad), gym::Error);
}

TEST(OpsPolicyObjective, TrlVectorsThroughTheOpsAlone) {
  // raw logits → selective_log_softmax → clipped_policy_objective with the loss_type's weights; with
  // β > 0 the caller adds β·Σ_i w_i Σ_t m_it kl_it (k3, TRL's per_token_kl) with the same weights.
  const auto& v = gym::test::policy_loss_vectors();
  const auto& in = v["inputs"];
  auto logits0 = json_tensor(in["logits"]);
  auto ids = json_tensor(in["completion_ids"]).to(torch::kInt64);
  auto mask = json_tensor(in["completion_mask"]), old = json_tensor(in["old_per_token_logps"]);
  auto ref = json_tensor(in["ref_per_token_logps"]);
  auto adv = json_tensor(v["derived"]["advantages_trl_group"]);
  const auto& meta = v["meta"];
  int checked = 0, with_kl = 0;
  for (const auto& c : v["cases"]) {
    const auto& cfg = c["config"];
    if (cfg.value("framework", "") != "trl") continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    const double beta = cfg["beta"].get<double>();
    const auto t = gym::test::trl_case_options(cfg, meta);
    auto logits = logits0.clone().requires_grad_(true);
    auto logp = ops::selective_log_softmax(logits, ids, meta["temperature"].get<double>()).logp;
    auto weights = ops::sequence_weights(mask, t.aggregation, t.params);   // [B]
    auto out = ops::clipped_policy_objective(logp, cfg["on_policy"].get<bool>() ? logp.detach() : old, adv, mask, weights, t.objective);
    auto loss = out.loss;
    if (beta != 0.0) {
      auto kl = torch::exp(ref - logp) - (ref - logp) - 1;   // [B, T]
      loss = loss + beta * (weights.unsqueeze(1) * mask * kl).sum();
      ++with_kl;
    }
    loss.backward();
    const double want = c["loss"].get<double>();
    EXPECT_LE(std::abs(loss.item<double>() - want), 1e-6 * std::abs(want) + 1e-12);
    EXPECT_LE(max_abs_diff(out.ratio, json_tensor(c["importance_weight"])), 1e-6);
    EXPECT_LE(max_abs_diff(logits.grad(), json_tensor(c["grad_logits"])), 1e-6);
    ++checked;
  }
  EXPECT_GE(checked, 17);
  EXPECT_GE(with_kl, 8);
}

TEST(OpsPolicyObjective, BadInputsAreClearErrors) {
  const auto b = make_batch();
  ops::PolicyObjectiveOptions o;
  EXPECT_THROW(ops::clipped_policy_objective(b.logp, b.old.narrow(1, 0, 4), b.adv, b.mask, b.weight, o), gym::Error);
  EXPECT_THROW(ops::clipped_policy_objective(b.logp, b.old, b.adv.narrow(0, 0, 5), b.mask, b.weight, o), gym::Error);
  EXPECT_THROW(ops::clipped_policy_objective(b.logp, b.old, b.adv, b.mask, b.weight.narrow(0, 0, 2), o), gym::Error);
  o.dual_clip = 0.5;
  EXPECT_THROW(ops::clipped_policy_objective(b.logp, b.old, b.adv, b.mask, b.weight, o), gym::Error);
  o.dual_clip.reset();
  o.eps_low = -0.1;
  EXPECT_THROW(ops::clipped_policy_objective(b.logp, b.old, b.adv, b.mask, b.weight, o), gym::Error);
}

TEST(OpsPolicyObjectiveCuda, KernelMatchesTwinFloat64AndFloat32) {
  GYM_REQUIRE_CUDA_KERNELS();
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    const double tol = dtype == torch::kFloat64 ? 1e-12 : 1e-5;
    const auto gpu = make_batch(torch::kCUDA, dtype), cpu = make_batch(torch::kCPU, dtype);
    for (auto [name, o] : option_grid()) {
      for (bool per_token : {false, true}) {
        SCOPED_TRACE(name + " " + c10::toString(dtype) + (per_token ? " adv [B, T]" : " adv [B]"));
        auto kernel = run(gpu, per_token ? gpu.adv_tok : gpu.adv, o, false);
        o.impl = ops::Impl::Twin;
        auto twin = run(cpu, per_token ? cpu.adv_tok : cpu.adv, o, false);
        o.impl = ops::Impl::Auto;
        EXPECT_TRUE(kernel.grad.is_cuda());
        EXPECT_LE(std::abs(kernel.out.loss.item<double>() - twin.out.loss.item<double>()), tol);
        EXPECT_LE(max_abs_diff(kernel.out.ratio, twin.out.ratio), tol);
        EXPECT_LE(max_abs_diff(kernel.grad, twin.grad), tol);
      }
    }
  }
}
