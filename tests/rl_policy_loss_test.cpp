// Data-driven exactness of the policy losses against TRL's (and verl's) reference vectors, in
// float64: loss, importance weights, the gradient w.r.t. the raw logits, advantages, metrics.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

#include "gym/core/fs.h"
#include "gym/rl/losses.h"

namespace {

torch::Tensor tensor_of(const nlohmann::json& j) {
  std::vector<int64_t> shape;
  const nlohmann::json* p = &j;
  while (p->is_array()) shape.push_back(static_cast<int64_t>(p->size())), p = &(*p)[0];
  std::vector<double> flat;
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& x) {
    if (x.is_array()) for (const auto& y : x) walk(y);
    else flat.push_back(x.get<double>());
  };
  walk(j);
  return torch::tensor(flat, torch::kFloat64).view(shape);
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(RlPolicyLossVectors, EveryTrlCaseMatchesLossWeightsGradientsAndAdvantages) {
  const char* env = std::getenv("GYM_POLICY_LOSS_VECTORS");
  const std::string path = env && *env ? env : std::string(GYM_TEST_DATA) + "/rl/policy_loss_vectors.json";
  const auto v = nlohmann::json::parse(gym::read_file(path));
  const auto& in = v["inputs"];
  const auto& meta = v["meta"];
  const double temperature = meta["temperature"].get<double>();
  const int64_t g = meta["num_generations"].get<int64_t>();
  auto ids = tensor_of(in["completion_ids"]).to(torch::kInt64);
  auto mask = tensor_of(in["completion_mask"]);
  auto old = tensor_of(in["old_per_token_logps"]);
  auto ref = tensor_of(in["ref_per_token_logps"]);
  auto rewards = tensor_of(in["rewards"]).unsqueeze(1);

  // per-token log-probs, entropies and advantages
  auto raw = tensor_of(in["logits"]);
  EXPECT_LE(max_abs(gym::rl::selective_log_softmax(raw, ids, temperature), tensor_of(v["derived"]["per_token_logps"])), 1e-12);
  EXPECT_LE(max_abs(gym::rl::entropy_from_logits(raw, temperature), tensor_of(v["derived"]["entropies"])), 1e-12);
  for (const char* scale : {"group", "batch", "none"}) {
    auto adv = gym::rl::group_advantages(rewards, {1.0}, g, scale);
    EXPECT_LE(max_abs(adv.advantages, tensor_of(v["derived"][std::string("advantages_trl_") + scale])), 1e-12) << scale;
  }
  const auto group = gym::rl::group_advantages(rewards, {1.0}, g, "group");
  const auto& bm = v["derived"]["batch_metrics_trl"];
  EXPECT_NEAR(group.metrics.at("reward"), bm["reward"].get<double>(), 1e-12);
  EXPECT_NEAR(group.metrics.at("reward_std"), bm["reward_std"].get<double>(), 1e-12);
  EXPECT_NEAR(group.metrics.at("frac_reward_zero_std"), bm["frac_reward_zero_std"].get<double>(), 1e-12);

  int checked = 0, skipped = 0;
  for (const auto& c : v["cases"]) {
    const std::string name = c["name"];
    const auto& cfg = c["config"];
    if (cfg.value("framework", "") != "trl") {
      // gym offers TRL's aggregation; verl's modes (token-mean over dp, dual clip, clamped log-ratios,
      // separately aggregated KL) are not gym modes.
      std::cout << "[ SKIPPED ] " << name << ": verl loss_mode " << cfg.value("loss_mode", "") << " / "
                << cfg.value("loss_agg_mode", "") << " is not a gym mode (gym implements TRL's losses)\n";
      ++skipped;
      continue;
    }
    SCOPED_TRACE(name);
    auto logits = raw.clone().requires_grad_(true);
    auto logp = gym::rl::selective_log_softmax(logits, ids, temperature);
    gym::rl::PolicyLossInput pin{logp, cfg["on_policy"].get<bool>() ? torch::Tensor() : old, ref, group.advantages, mask};
    gym::rl::PolicyLossConfig pc;
    pc.loss_type = cfg["loss_type"];
    pc.epsilon_low = cfg["eps_low"];
    pc.epsilon_high = cfg["eps_high"];
    pc.beta = cfg["beta"];
    pc.max_completion_length = meta["max_completion_length"];
    pc.grad_accum = meta["grad_accum_steps"];
    pc.num_processes = meta["num_processes"];
    auto loss = gym::rl::make_policy_loss(cfg["level"].get<std::string>());
    auto out = loss->compute(pin, pc);
    out.loss.backward();
    const double want = c["loss"].get<double>();
    EXPECT_LE(std::abs(out.loss.item<double>() - want) / std::max(1e-300, std::abs(want)), 1e-6)
        << "loss " << out.loss.item<double>() << " vs " << want;
    EXPECT_LE(max_abs(out.importance_weight, tensor_of(c["importance_weight"])), 1e-6);
    EXPECT_LE(max_abs(logits.grad(), tensor_of(c["grad_logits"])), 1e-6);
    for (const auto& [k, val] : out.metrics)
      if (c["metrics"].contains(k)) { EXPECT_NEAR(val, c["metrics"][k].get<double>(), 1e-6) << k; }
    ++checked;
  }
  EXPECT_EQ(checked, 19);
  std::cout << "checked " << checked << " TRL cases, skipped " << skipped << " verl cases by name\n";
}

TEST(RlPolicyLoss, RegistryAndDelta) {
  EXPECT_EQ(gym::rl::make_policy_loss("gspo")->name(), "gspo");
  EXPECT_EQ(gym::rl::make_policy_loss("sequence_token")->name(), "gspo_token");
  EXPECT_THROW(gym::rl::make_policy_loss("ppo"), std::exception);
  // delta caps the ratio of the unclipped branch (two-sided clipping)
  auto logp = torch::tensor({{std::log(5.0)}}, torch::kFloat64).requires_grad_(true);
  gym::rl::PolicyLossInput in{logp, torch::zeros({1, 1}, torch::kFloat64), {}, torch::tensor({-1.0}, torch::kFloat64),
                              torch::ones({1, 1}, torch::kFloat64)};
  gym::rl::PolicyLossConfig cfg;
  cfg.loss_type = "grpo";
  cfg.delta = 2.0;
  auto out = gym::rl::make_policy_loss("grpo")->compute(in, cfg);
  EXPECT_NEAR(out.loss.item<double>(), 2.0, 1e-12);   // −min(2·(−1), 1.2·(−1)) = 2
}
