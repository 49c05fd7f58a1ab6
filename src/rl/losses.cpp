#include "gym/rl/losses.h"

#include <cmath>

#include "gym/core/error.h"

namespace gym::rl {

torch::Tensor selective_log_softmax(const torch::Tensor& logits, const torch::Tensor& ids, double temperature) {
  auto z = logits / temperature;
  if (z.scalar_type() == torch::kBFloat16 || z.scalar_type() == torch::kHalf) {
    std::vector<torch::Tensor> rows;
    for (int64_t b = 0; b < z.size(0); ++b)
      rows.push_back(torch::log_softmax(z[b], -1).gather(-1, ids[b].unsqueeze(-1)).squeeze(-1));
    return torch::stack(rows);
  }
  auto picked = z.gather(-1, ids.unsqueeze(-1)).squeeze(-1);
  std::vector<torch::Tensor> lse;
  for (int64_t b = 0; b < z.size(0); ++b) lse.push_back(torch::logsumexp(z[b], -1));   // one row at a time
  return picked - torch::stack(lse);
}

torch::Tensor entropy_from_logits(const torch::Tensor& logits, double temperature) {
  torch::NoGradGuard guard;
  auto logp = torch::log_softmax(logits.to(torch::kFloat64) / temperature, -1);
  return -(logp.exp() * logp).sum(-1);
}

namespace {

// nanstd with Bessel's correction over the last dim.
torch::Tensor nanstd(const torch::Tensor& x, int64_t dim) {
  auto valid = ~torch::isnan(x);
  auto n = valid.sum(dim, true).to(x.scalar_type());
  auto mean = torch::nansum(x, dim, true) / n;
  auto sq = torch::where(valid, (x - mean).pow(2), torch::zeros_like(x)).sum(dim, true);
  return (sq / (n - 1)).sqrt().squeeze(dim);
}

}  // namespace

AdvantageResult group_advantages(const torch::Tensor& rewards, const std::vector<double>& weights, int64_t g,
                                 const std::string& scale) {
  AdvantageResult out;
  auto w = torch::tensor(weights, rewards.options());
  auto all_nan = torch::isnan(rewards).all(1);                                  // [B]
  out.rewards = torch::nansum(rewards * w.unsqueeze(0), 1);                     // [B]
  auto r = torch::where(all_nan, torch::full_like(out.rewards, NAN), out.rewards);
  auto grouped = r.view({-1, g});
  auto n = (~torch::isnan(grouped)).sum(1, true).to(r.scalar_type());
  auto mean = (torch::nansum(grouped, 1, true) / n).expand({-1, g}).reshape({-1});
  auto group_std = nanstd(grouped, 1).unsqueeze(1).expand({-1, g}).reshape({-1});
  auto adv = r - mean;
  if (scale == "group") adv = adv / (group_std + 1e-4);
  else if (scale == "batch") adv = adv / (nanstd(r.unsqueeze(0), 1) + 1e-4);
  else if (scale != "none") config_error("scale_rewards must be group, batch or none, got '{}'", scale);
  out.advantages = torch::nan_to_num(adv, 0.0, 0.0, 0.0);   // completions no reward could score get 0
  out.metrics["reward"] = torch::nanmean(r).item<double>();
  out.metrics["reward_std"] = nanstd(r.unsqueeze(0), 1).item<double>();
  out.metrics["frac_reward_zero_std"] =
      torch::isclose(group_std, torch::zeros_like(group_std)).to(torch::kFloat64).mean().item<double>();
  for (int64_t f = 0; f < rewards.size(1); ++f) {
    auto col = rewards.select(1, f);
    out.metrics["rewards/" + std::to_string(f) + "/mean"] = torch::nanmean(col).item<double>();
    out.metrics["rewards/" + std::to_string(f) + "/std"] = nanstd(col.unsqueeze(0), 1).item<double>();
  }
  return out;
}

PolicyLossOutput PolicyLoss::compute(const PolicyLossInput& in, const PolicyLossConfig& cfg) const {
  const auto& logp = in.logp;
  const auto mask = in.mask.to(logp.scalar_type());
  const auto old = in.old_logp.defined() ? in.old_logp : logp.detach();
  auto coef_1 = torch::exp(log_importance_weight(logp, old, mask));
  auto coef_2 = torch::clamp(coef_1, 1 - cfg.epsilon_low, 1 + cfg.epsilon_high);
  if (cfg.delta) coef_1 = torch::clamp_max(coef_1, *cfg.delta);   // after coef_2, as TRL
  auto a = in.advantages.unsqueeze(1);
  auto per_token = -torch::min(coef_1 * a, coef_2 * a);
  PolicyLossOutput out;
  torch::Tensor kl;
  if (cfg.beta != 0.0) {
    auto d = in.ref_logp - logp;
    kl = torch::exp(d) - d - 1;                                      // k3 estimator
    per_token = per_token + cfg.beta * kl;
  }
  const double ga = static_cast<double>(cfg.grad_accum);
  const int64_t b = logp.size(0);
  auto masked = per_token * mask;                                      // [B, T] (broadcast from [B, 1])
  if (cfg.loss_type == "grpo") {
    out.loss = (masked.sum(-1) / mask.sum(-1).clamp_min(1.0)).mean() / ga;
  } else if (cfg.loss_type == "bnpo") {
    out.loss = masked.sum() / mask.sum().clamp_min(1.0) / ga;
  } else if (cfg.loss_type == "dr_grpo") {
    out.loss = masked.sum() / static_cast<double>(b * cfg.max_completion_length) / ga;
  } else if (cfg.loss_type == "dapo") {
    const double items = cfg.num_items_in_batch > 0 ? cfg.num_items_in_batch : mask.sum().item<double>();
    out.loss = masked.sum() / (items / static_cast<double>(cfg.num_processes));
  } else {
    config_error("unknown loss_type '{}' (grpo, bnpo, dr_grpo, dapo)", cfg.loss_type);
  }
  out.importance_weight = coef_1.detach();
  // TRL's metrics: token-weighted over the mask, or per sequence when the ratio is [B, 1].
  torch::NoGradGuard guard;
  auto low = ((coef_1 < 1 - cfg.epsilon_low) & (a < 0)).to(torch::kFloat64);
  auto high = ((coef_1 > 1 + cfg.epsilon_high) & (a > 0)).to(torch::kFloat64);
  auto region = ((low + high) > 0).to(torch::kFloat64);
  auto m64 = mask.to(torch::kFloat64);
  auto batch_mean = [&](const torch::Tensor& x) {
    if (x.size(1) == 1) return x.mean().item<double>();
    return ((x * m64).sum() / m64.sum().clamp_min(1.0)).item<double>();
  };
  auto per_seq = [&](const torch::Tensor& x) {
    if (x.size(1) == 1) return x.squeeze(1);
    return (x * m64).sum(-1) / m64.sum(-1).clamp_min(1.0);
  };
  out.metrics["clip_ratio/low_mean"] = batch_mean(low);
  out.metrics["clip_ratio/high_mean"] = batch_mean(high);
  out.metrics["clip_ratio/region_mean"] = batch_mean(region);
  out.metrics["clip_ratio/low_min"] = per_seq(low).min().item<double>();
  out.metrics["clip_ratio/high_max"] = per_seq(high).max().item<double>();
  if (kl.defined()) out.metrics["kl"] = ((kl.to(torch::kFloat64) * m64).sum() / m64.sum().clamp_min(1.0)).item<double>();
  return out;
}

namespace {

// GRPO: r_t = exp(logp_t − old_t)
struct TokenLevel : PolicyLoss {
  std::string name() const override { return "grpo"; }
  torch::Tensor log_importance_weight(const torch::Tensor& logp, const torch::Tensor& old, const torch::Tensor&) const override {
    return logp - old;
  }
};

// GSPO: s_i = exp(Σ_t m (logp − old) / n_i), one ratio per sequence: [B, 1]
struct SequenceLevel : PolicyLoss {
  std::string name() const override { return "gspo"; }
  torch::Tensor log_importance_weight(const torch::Tensor& logp, const torch::Tensor& old, const torch::Tensor& mask) const override {
    return ((logp - old) * mask).sum(-1, true) / mask.sum(-1, true).clamp_min(1.0);
  }
};

// GSPO-token: exp(sg[log s_i] + logp_t − sg[logp_t]): the value of s_i, the gradient of each token.
struct SequenceTokenLevel : PolicyLoss {
  std::string name() const override { return "gspo_token"; }
  torch::Tensor log_importance_weight(const torch::Tensor& logp, const torch::Tensor& old, const torch::Tensor& mask) const override {
    auto seq = (((logp - old) * mask).sum(-1, true) / mask.sum(-1, true).clamp_min(1.0)).detach();
    return seq + logp - logp.detach();
  }
};

}  // namespace

std::vector<std::string> policy_loss_names() { return {"grpo", "gspo", "gspo_token"}; }

std::unique_ptr<PolicyLoss> make_policy_loss(const std::string& name) {
  if (name == "grpo" || name == "token") return std::make_unique<TokenLevel>();
  if (name == "gspo" || name == "sequence") return std::make_unique<SequenceLevel>();
  if (name == "gspo_token" || name == "sequence_token") return std::make_unique<SequenceTokenLevel>();
  config_error("unknown policy loss '{}' (known: grpo, gspo, gspo_token)", name);
}

}  // namespace gym::rl
