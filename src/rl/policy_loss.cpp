// TRL's GRPO / GSPO / GSPO-token losses (GT 3054-3150, GTok 72-91) and the policy-loss registry.
#include "gym/rl/policy_loss.h"

#include <cmath>

#include "policy_loss_common.h"

namespace gym::rl {

std::unique_ptr<PolicyLoss> make_verl_policy_loss(const std::string& mode);   // policy_loss_verl.cpp

namespace {

enum class Level { Token, Sequence, SequenceToken };

// TRL's masked_seq_mean: one value per sequence, NaN for an empty one (skipped by nanmin/nanmax).
torch::Tensor per_sequence(const torch::Tensor& x, const torch::Tensor& mask) {
  if (x.size(1) == 1) return x.squeeze(1);
  return (x * mask).sum(-1) / mask.sum(-1);
}

// TRL's global_masked_mean on one process: token-weighted, or per sequence for a [B, 1] ratio.
double masked_mean(const torch::Tensor& x, const torch::Tensor& mask) {
  if (x.size(1) == 1) return detail::to_double(x.sum() / static_cast<double>(x.size(0)));
  return detail::to_double((x * mask).sum() / mask.sum().clamp_min(1.0));
}

double nan_extreme(const torch::Tensor& x, bool want_max) {
  auto valid = x.masked_select(~torch::isnan(x));
  if (valid.numel() == 0) return NAN;
  return detail::to_double(want_max ? valid.max() : valid.min());
}

class TrlPolicyLoss : public PolicyLoss {
 public:
  TrlPolicyLoss(std::string name, Level level) : name_(std::move(name)), level_(level) {}
  std::string name() const override { return name_; }

  PolicyLossOutput compute(const PolicyLossInput& in, const PolicyLossConfig& cfg) const override {
    auto t = detail::prepare_inputs(name_, in, cfg);
    const auto& mask = t.mask;                                          // [B, T]
    auto log_ratio = t.logp - t.old;                                    // [B, T]
    torch::Tensor log_w;                                                // [B, T] or [B, 1]
    if (level_ == Level::Token) {
      log_w = log_ratio;
    } else {
      auto seq = (log_ratio * mask).sum(-1, true) / mask.sum(-1, true).clamp_min(1.0);   // log s_i: [B, 1]
      // GSPO-token: the value of s_i with the gradient of each token, exp(sg[log s_i] + logp − sg[logp]).
      log_w = level_ == Level::Sequence ? seq : seq.detach() + t.logp - t.logp.detach();
    }
    auto coef_1 = torch::exp(log_w);
    auto coef_2 = torch::clamp(coef_1, 1 - cfg.epsilon_low, 1 + cfg.epsilon_high);
    PolicyLossOutput out;
    out.importance_weight = coef_1.detach();
    if (cfg.delta) coef_1 = torch::clamp_max(coef_1, *cfg.delta);     // after coef_2, as TRL does
    auto per_token = -torch::min(coef_1 * t.adv, coef_2 * t.adv);      // [B, T] or [B, 1]
    torch::Tensor kl;
    if (cfg.beta != 0.0) {
      auto d = t.ref - t.logp;
      kl = torch::exp(d) - d - 1;                                       // k3, per token, after clipping
      per_token = per_token + cfg.beta * kl;                            // [B, 1] broadcasts over T
    }
    out.loss = aggregate(per_token.expand_as(mask) * mask, mask, cfg);

    torch::NoGradGuard no_grad;
    const auto m64 = mask.to(torch::kFloat64);
    auto low = ((coef_1 < 1 - cfg.epsilon_low) & (t.adv < 0)).to(torch::kFloat64);
    auto high = ((coef_1 > 1 + cfg.epsilon_high) & (t.adv > 0)).to(torch::kFloat64);
    auto region = ((low + high) > 0).to(torch::kFloat64);
    out.metrics["clip_ratio/low_mean"] = masked_mean(low, m64);
    out.metrics["clip_ratio/high_mean"] = masked_mean(high, m64);
    out.metrics["clip_ratio/region_mean"] = masked_mean(region, m64);
    out.metrics["clip_ratio/low_min"] = nan_extreme(per_sequence(low, m64), false);
    out.metrics["clip_ratio/high_max"] = nan_extreme(per_sequence(high, m64), true);
    if (kl.defined()) out.metrics["kl"] = masked_mean(kl.to(torch::kFloat64), m64);
    return out;
  }

 private:
  // masked: [B, T] per-token loss times the mask (GT 3124-3150).
  static torch::Tensor aggregate(const torch::Tensor& masked, const torch::Tensor& mask, const PolicyLossConfig& cfg) {
    const double ga = static_cast<double>(cfg.grad_accum);
    if (cfg.loss_type == "grpo") return (masked.sum(-1) / mask.sum(-1).clamp_min(1.0)).mean() / ga;
    if (cfg.loss_type == "bnpo") return masked.sum() / mask.sum().clamp_min(1.0) / ga;
    if (cfg.loss_type == "dr_grpo") {
      if (cfg.max_completion_length < 1) config_error("dr_grpo needs max_completion_length >= 1, got {}", cfg.max_completion_length);
      return masked.sum() / static_cast<double>(masked.size(0) * cfg.max_completion_length) / ga;
    }
    if (cfg.loss_type == "dapo") {
      // num_items_in_batch counts the whole generation batch of all ranks; no division by GA.
      const double items = cfg.num_items_in_batch > 0 ? cfg.num_items_in_batch : mask.sum().item<double>();
      return masked.sum() / (std::max(items, 1.0) / static_cast<double>(std::max<int64_t>(1, cfg.num_processes)));
    }
    config_error("unknown loss_type '{}' (known: grpo, bnpo, dr_grpo, dapo)", cfg.loss_type);
  }

  std::string name_;
  Level level_;
};

}  // namespace

std::vector<std::string> policy_loss_names() { return {"grpo", "gspo", "gspo_token", "verl_vanilla", "verl_gspo"}; }

std::unique_ptr<PolicyLoss> make_policy_loss(const std::string& name) {
  if (name == "grpo" || name == "token") return std::make_unique<TrlPolicyLoss>("grpo", Level::Token);
  if (name == "gspo" || name == "sequence") return std::make_unique<TrlPolicyLoss>("gspo", Level::Sequence);
  if (name == "gspo_token" || name == "sequence_token") return std::make_unique<TrlPolicyLoss>("gspo_token", Level::SequenceToken);
  if (name == "verl_vanilla") return make_verl_policy_loss("vanilla");
  if (name == "verl_gspo") return make_verl_policy_loss("gspo");
  config_error("unknown policy loss '{}' (known: grpo, gspo, gspo_token, verl_vanilla, verl_gspo; "
               "aliases token, sequence, sequence_token)", name);
}

}  // namespace gym::rl
