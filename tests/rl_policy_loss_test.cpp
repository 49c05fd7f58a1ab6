// Exactness of log-probs, advantages and policy losses against the TRL/verl reference vectors
// (float64; file from $GYM_POLICY_LOSS_VECTORS or tests/data/rl/policy_loss_vectors.json), plus the
// edge cases the vectors do not cover.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <iostream>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/rl/advantages.h"
#include "gym/rl/logprobs.h"
#include "gym/rl/policy_loss.h"
#include "ops_test_util.h"

namespace rl = gym::rl;

namespace {

torch::Tensor tensor_of(const nlohmann::json& j) { return gym::test::json_tensor(j); }

double max_abs(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

struct Vectors {
  nlohmann::json json;
  double temperature = 1;
  int64_t group = 1;
  torch::Tensor logits, ids, mask, old, ref, rewards;
};

const Vectors& vectors() {
  static const Vectors v = [] {
    const char* env = std::getenv("GYM_POLICY_LOSS_VECTORS");
    const std::string path = env && *env ? env : std::string(GYM_TEST_DATA) + "/rl/policy_loss_vectors.json";
    std::cout << "policy loss vectors: " << path << "\n";
    Vectors x;
    x.json = nlohmann::json::parse(gym::read_file(path));
    const auto& in = x.json["inputs"];
    x.temperature = x.json["meta"]["temperature"].get<double>();
    x.group = x.json["meta"]["num_generations"].get<int64_t>();
    x.logits = tensor_of(in["logits"]);
    x.ids = tensor_of(in["completion_ids"]).to(torch::kInt64);
    x.mask = tensor_of(in["completion_mask"]);
    x.old = tensor_of(in["old_per_token_logps"]);
    x.ref = tensor_of(in["ref_per_token_logps"]);
    x.rewards = tensor_of(in["rewards"]);
    return x;
  }();
  return v;
}

// Runs one case: raw logits → selective_log_softmax → loss → backward.
struct CaseResult {
  rl::PolicyLossOutput out;
  torch::Tensor grad;   // [B, T, V] w.r.t. the raw logits
};
CaseResult run_case(const std::string& loss_name, const rl::PolicyLossConfig& pc, const torch::Tensor& advantages, bool on_policy) {
  const auto& v = vectors();
  auto logits = v.logits.clone().requires_grad_(true);
  auto logp = rl::selective_log_softmax(logits, v.ids, v.temperature);
  rl::PolicyLossInput in{logp, on_policy ? torch::Tensor() : v.old, v.ref, advantages, v.mask};
  CaseResult r{rl::make_policy_loss(loss_name)->compute(in, pc), {}};
  r.out.loss.backward();
  r.grad = logits.grad();
  return r;
}

void expect_case(const std::string& name, const nlohmann::json& c, const CaseResult& r) {
  const double want = c["loss"].get<double>(), got = r.out.loss.item<double>();
  // Relative 1e-6 with an absolute floor of 1e-12: on-policy losses are 0 up to rounding (1.4e-23 in
  // the float64 vectors; the fused op's summation order gives ~4e-17).
  EXPECT_LE(std::abs(got - want), 1e-6 * std::abs(want) + 1e-12) << name << ": loss " << got << " vs " << want;
  EXPECT_LE(max_abs(r.out.importance_weight, tensor_of(c["importance_weight"])), 1e-6) << name << ": importance weights";
  EXPECT_LE(max_abs(r.grad, tensor_of(c["grad_logits"])), 1e-6) << name << ": gradient w.r.t. the raw logits";
  int metrics = 0;
  for (const auto& [key, val] : c["metrics"].items()) {
    if (key == "entropy") continue;   // a log-prob quantity, checked in LogprobsEntropiesAndAdvantages
    const auto it = r.out.metrics.find(key);
    if (it == r.out.metrics.end()) {
      ADD_FAILURE() << name << ": metric " << key << " missing";
      continue;
    }
    EXPECT_NEAR(it->second, val.get<double>(), 1e-6) << name << ": metric " << key;
    ++metrics;
  }
  EXPECT_GT(metrics, 0) << name;
}

}  // namespace

TEST(RlPolicyLossVectors, LogprobsEntropiesAndAdvantages) {
  const auto& v = vectors();
  const auto& d = v.json["derived"];
  EXPECT_LE(max_abs(rl::selective_log_softmax(v.logits, v.ids, v.temperature), tensor_of(d["per_token_logps"])), 1e-12);
  const auto entropy = rl::entropy_from_logits(v.logits, v.temperature);
  EXPECT_LE(max_abs(entropy, tensor_of(d["entropies"])), 1e-12);
  const double entropy_metric = ((entropy * v.mask).sum() / v.mask.sum()).item<double>();
  EXPECT_NEAR(entropy_metric, v.json["cases"][0]["metrics"]["entropy"].get<double>(), 1e-12);
  for (const char* scale : {"group", "batch", "none"}) {
    auto adv = rl::group_advantages(v.rewards.unsqueeze(1), {1.0}, v.group, scale, {"r"});
    EXPECT_LE(max_abs(adv.advantages, tensor_of(d[std::string("advantages_trl_") + scale])), 1e-12) << "scale_rewards " << scale;
  }
  EXPECT_LE(max_abs(rl::verl_grpo_advantages(v.rewards, v.group), tensor_of(d["advantages_verl_grpo"])), 1e-12);
  const auto group = rl::group_advantages(v.rewards.unsqueeze(1), {1.0}, v.group, "group", {"r"});
  for (const char* k : {"reward", "reward_std", "frac_reward_zero_std"})
    EXPECT_NEAR(group.metrics.at(k), d["batch_metrics_trl"][k].get<double>(), 1e-12) << k;
}

TEST(RlPolicyLossVectors, EveryTrlCaseMatchesLossWeightsGradientAndMetrics) {
  const auto& v = vectors();
  const auto adv = tensor_of(v.json["derived"]["advantages_trl_group"]);
  const auto& meta = v.json["meta"];
  int checked = 0;
  for (const auto& c : v.json["cases"]) {
    const auto& cfg = c["config"];
    if (cfg.value("framework", "") != "trl") continue;
    const std::string name = c["name"];
    rl::PolicyLossConfig pc;
    pc.loss_type = cfg["loss_type"];
    pc.epsilon_low = cfg["eps_low"];
    pc.epsilon_high = cfg["eps_high"];
    pc.beta = cfg["beta"];
    pc.max_completion_length = meta["max_completion_length"];
    pc.grad_accum = meta["grad_accum_steps"];
    pc.num_processes = meta["num_processes"];
    pc.num_items_in_batch = v.mask.sum().item<double>();   // one process, one micro-batch per generation batch
    expect_case(name, c, run_case(cfg["level"].get<std::string>(), pc, adv, cfg["on_policy"].get<bool>()));
    ++checked;
  }
  EXPECT_GT(checked, 0);
  std::cout << "checked " << checked << " TRL cases\n";
}

TEST(RlPolicyLossVectors, VerlCasesWhereGymOffersTheMode) {
  const auto& v = vectors();
  const auto adv = tensor_of(v.json["derived"]["advantages_verl_grpo"]);
  const auto known = rl::policy_loss_names();
  int checked = 0, skipped = 0;
  for (const auto& c : v.json["cases"]) {
    const auto& cfg = c["config"];
    if (cfg.value("framework", "") != "verl") continue;
    const std::string name = c["name"], loss = "verl_" + cfg["loss_mode"].get<std::string>();
    if (std::find(known.begin(), known.end(), loss) == known.end()) {
      std::cout << "[ SKIPPED ] " << name << ": verl loss_mode " << cfg["loss_mode"] << " is not a gym policy loss\n";
      ++skipped;
      continue;
    }
    rl::PolicyLossConfig pc;
    pc.loss_agg_mode = cfg["loss_agg_mode"];
    pc.epsilon_low = cfg["clip_low"];
    pc.epsilon_high = cfg["clip_high"];
    pc.clip_ratio_c = cfg["clip_ratio_c"];
    pc.beta = cfg["kl_loss_coef"];
    pc.grad_accum = v.json["meta"]["grad_accum_steps"];
    expect_case(name, c, run_case(loss, pc, adv, cfg.value("on_policy", false)));
    ++checked;
  }
  std::cout << "checked " << checked << " verl cases, skipped " << skipped << "\n";
}

TEST(RlPolicyLoss, RegistryNamesAliasesAndUnknown) {
  for (const auto& n : rl::policy_loss_names()) EXPECT_EQ(rl::make_policy_loss(n)->name(), n);
  EXPECT_EQ(rl::make_policy_loss("token")->name(), "grpo");
  EXPECT_EQ(rl::make_policy_loss("sequence")->name(), "gspo");
  EXPECT_EQ(rl::make_policy_loss("sequence_token")->name(), "gspo_token");
  try {
    rl::make_policy_loss("ppo");
    ADD_FAILURE() << "no error for an unknown loss";
  } catch (const gym::Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("known: grpo, gspo, gspo_token, verl_vanilla, verl_gspo"), std::string::npos) << e.what();
  }
}

TEST(RlPolicyLoss, DeltaCapsTheUnclippedRatio) {
  auto logp = torch::tensor({{std::log(5.0)}}, torch::kFloat64).requires_grad_(true);
  rl::PolicyLossInput in{logp, torch::zeros({1, 1}, torch::kFloat64), {}, torch::tensor({-1.0}, torch::kFloat64),
                         torch::ones({1, 1}, torch::kFloat64)};
  rl::PolicyLossConfig cfg;
  cfg.loss_type = "grpo";
  cfg.delta = 2.0;
  auto out = rl::make_policy_loss("grpo")->compute(in, cfg);
  EXPECT_NEAR(out.loss.item<double>(), 2.0, 1e-12);   // −min(2·(−1), 1.2·(−1)) = 2
  EXPECT_NEAR(out.importance_weight.item<double>(), 5.0, 1e-12);
}

TEST(RlPolicyLoss, VerlDualClipBoundsNegativeAdvantages) {
  // ratio e^3 ≈ 20 with A = −1: clipped surrogate 20, dual clip caps it at c = 3.
  auto logp = torch::tensor({{3.0}}, torch::kFloat64).requires_grad_(true);
  rl::PolicyLossInput in{logp, torch::zeros({1, 1}, torch::kFloat64), {}, torch::tensor({-1.0}, torch::kFloat64),
                         torch::ones({1, 1}, torch::kFloat64)};
  rl::PolicyLossConfig cfg;
  auto out = rl::make_policy_loss("verl_vanilla")->compute(in, cfg);
  EXPECT_NEAR(out.loss.item<double>(), 3.0, 1e-12);
  EXPECT_NEAR(out.metrics.at("actor/pg_clipfrac_lower"), 1.0, 1e-6);
  cfg.loss_agg_mode = "mean";
  EXPECT_THROW(rl::make_policy_loss("verl_vanilla")->compute(in, cfg), gym::Error);
}

TEST(RlPolicyLoss, BadInputsAreClearErrors) {
  auto logp = torch::zeros({2, 3}, torch::kFloat64);
  rl::PolicyLossConfig cfg;
  cfg.beta = 0.04;
  rl::PolicyLossInput no_ref{logp, {}, {}, torch::zeros({2}, torch::kFloat64), torch::ones({2, 3})};
  EXPECT_THROW(rl::make_policy_loss("grpo")->compute(no_ref, cfg), gym::Error);
  cfg.beta = 0;
  rl::PolicyLossInput bad_mask{logp, {}, {}, torch::zeros({2}, torch::kFloat64), torch::ones({2, 4})};
  EXPECT_THROW(rl::make_policy_loss("gspo")->compute(bad_mask, cfg), gym::Error);
  cfg.loss_type = "ppo";
  rl::PolicyLossInput ok{logp, {}, {}, torch::zeros({2}, torch::kFloat64), torch::ones({2, 3})};
  EXPECT_THROW(rl::make_policy_loss("grpo")->compute(ok, cfg), gym::Error);
}

TEST(RlLogprobs, ChunkedBackwardEqualsPlainAutogradAcrossChunks) {
  // V = 2^20 gives 4 rows per chunk, so T = 9 spans three chunks; the slice makes the logits non-contiguous.
  torch::manual_seed(3);
  const int64_t v = int64_t{1} << 20;
  auto base = torch::randn({1, 10, v});
  auto ids = torch::randint(0, v, {1, 9}, torch::kInt64);
  auto a = base.clone().requires_grad_(true);
  auto logp = rl::selective_log_softmax(a.narrow(1, 0, 9), ids, 0.7);
  auto w = torch::randn({1, 9});
  (logp * w).sum().backward();
  auto b = base.to(torch::kFloat64).requires_grad_(true);
  auto ref = torch::log_softmax(b.narrow(1, 0, 9) / 0.7, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1);
  (ref * w.to(torch::kFloat64)).sum().backward();
  EXPECT_LE(max_abs(logp.to(torch::kFloat64), ref.detach()), 1e-4);
  EXPECT_LE(max_abs(a.grad().to(torch::kFloat64), b.grad()), 1e-6);
  EXPECT_EQ(a.grad().narrow(1, 9, 1).abs().max().item<float>(), 0.0f);   // the row outside the slice
}

TEST(RlLogprobs, Bfloat16PathAndErrors) {
  torch::manual_seed(4);
  auto logits = torch::randn({2, 3, 50}) * 3;
  auto ids = torch::randint(0, 50, {2, 3}, torch::kInt64);
  auto want = rl::selective_log_softmax(logits, ids, 0.9);
  auto bf = logits.to(torch::kBFloat16).requires_grad_(true);
  auto got = rl::selective_log_softmax(bf, ids, 0.9);
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  EXPECT_LE(max_abs(got.to(torch::kFloat32), want), 0.1);
  got.sum().backward();
  EXPECT_EQ(bf.grad().scalar_type(), torch::kBFloat16);
  EXPECT_EQ(rl::entropy_from_logits(bf.detach(), 0.9).scalar_type(), torch::kFloat32);
  EXPECT_THROW(rl::selective_log_softmax(logits, torch::full({2, 3}, 50, torch::kInt64)), gym::Error);
  EXPECT_THROW(rl::selective_log_softmax(logits, ids.narrow(1, 0, 2)), gym::Error);
  EXPECT_THROW(rl::selective_log_softmax(logits, ids, 0.0), gym::Error);
}

TEST(RlAdvantages, UnscorableRowsWeightsAndZeroStdGroups) {
  // Group 1: one row no function could score → excluded from μ/σ, advantage 0. Group 2: all equal.
  const double nan = NAN;
  auto r = torch::tensor({1.0, nan, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5}, torch::kFloat64).view({8, 1});
  auto out = rl::group_advantages(torch::cat({r, torch::full({8, 1}, nan, torch::kFloat64)}, 1), {2.0, 1.0}, 4, "group",
                                  {"accuracy", "format"});
  // group 1 rewards 2, 0, 2 (weight 2): μ = 4/3, σ = sqrt(4/3)
  const double mu = 4.0 / 3.0, sd = std::sqrt(4.0 / 3.0);
  auto a = out.advantages;
  EXPECT_NEAR(a[0].item<double>(), (2 - mu) / (sd + 1e-4), 1e-12);
  EXPECT_EQ(a[1].item<double>(), 0.0);
  EXPECT_NEAR(a[2].item<double>(), (0 - mu) / (sd + 1e-4), 1e-12);
  for (int i = 4; i < 8; ++i) EXPECT_EQ(a[i].item<double>(), 0.0);
  EXPECT_TRUE(std::isnan(out.rewards[1].item<double>()));
  EXPECT_NEAR(out.metrics.at("frac_reward_zero_std"), 0.5, 1e-12);
  EXPECT_NEAR(out.metrics.at("reward"), (2 + 0 + 2 + 4 * 1.0) / 7, 1e-12);
  EXPECT_NEAR(out.metrics.at("rewards/accuracy/mean"), 4.0 / 7, 1e-12);   // unweighted
  EXPECT_TRUE(std::isnan(out.metrics.at("rewards/format/mean")));
  // scale none: plain centring; batch: the batch nanstd
  auto none = rl::group_advantages(r, {1.0}, 4, "none");
  EXPECT_NEAR(none.advantages[0].item<double>(), 1 - 2.0 / 3, 1e-12);
  EXPECT_TRUE(none.metrics.count("rewards/0/mean"));
  EXPECT_THROW(rl::group_advantages(r, {1.0}, 3, "group"), gym::Error);
  EXPECT_THROW(rl::group_advantages(r, {1.0, 1.0}, 4, "group"), gym::Error);
  EXPECT_THROW(rl::group_advantages(r, {1.0}, 4, "rank"), gym::Error);
}

TEST(RlAdvantages, NormalizeThenSumAndVerlSingletonGroups) {
  auto r = torch::tensor({{1.0, 0.0}, {0.0, 1.0}, {1.0, 1.0}, {0.0, 0.0}}, torch::kFloat64);
  auto out = rl::group_advantages(r, {1.0, 1.0}, 2, "group", {}, "normalize_then_sum");
  EXPECT_NEAR(out.advantages.sum().item<double>(), 0.0, 1e-9);   // batch-normalised
  // verl: a group of one gets μ = 0, σ = 1
  auto s = torch::tensor({2.0, 1.0, 3.0}, torch::kFloat64);
  auto a = rl::verl_grpo_advantages(s, std::vector<int64_t>{7, 9, 9});
  EXPECT_NEAR(a[0].item<double>(), 2.0 / (1 + 1e-6), 1e-12);
  EXPECT_NEAR(a[1].item<double>(), -1 / (std::sqrt(2.0) + 1e-6), 1e-12);
  auto dr = rl::verl_grpo_advantages(s, std::vector<int64_t>{7, 9, 9}, false);
  EXPECT_NEAR(dr[2].item<double>(), 1.0, 1e-12);
}
