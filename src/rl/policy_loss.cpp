// TRL's GRPO / GSPO / GSPO-token losses (GT 3054-3150, GTok 72-91) and the policy-loss registry.
#include "gym/rl/policy_loss.h"

#include <cmath>

#include "gym/ops/policy_objective.h"
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

  // The clipped objective, the sequence log-ratio and the aggregation run in the fused op
  // (ops::clipped_policy_objective: the CUDA kernel on a GPU, its twin on the CPU); the k3 KL term is
  // added here with the same per-sequence weights (aggregations are linear).
  PolicyLossOutput compute(const PolicyLossInput& in, const PolicyLossConfig& cfg) const override {
    auto t = detail::prepare_inputs(name_, in, cfg);
    const auto& mask = t.mask;                                          // [B, T]
    ops::PolicyObjectiveOptions o;
    o.level = level_ == Level::Token ? ops::RatioLevel::Token : level_ == Level::Sequence ? ops::RatioLevel::Sequence
                                                                                           : ops::RatioLevel::SequenceToken;
    o.eps_low = cfg.epsilon_low;
    o.eps_high = cfg.epsilon_high;
    o.delta = cfg.delta;                                               // caps coef_1 after coef_2 is taken, as TRL
    auto weights = ops::sequence_weights(mask, aggregation(cfg), params(cfg));   // [B]
    auto obj = ops::clipped_policy_objective(t.logp, t.old, t.adv, mask, weights, o);
    PolicyLossOutput out;
    out.loss = obj.loss;
    out.importance_weight = obj.ratio;                                  // [B, T], or [B, 1] for gspo
    torch::Tensor kl;
    if (cfg.beta != 0.0) {
      auto d = t.ref - t.logp;
      kl = torch::exp(d) - d - 1;                                       // k3, per token
      out.loss = out.loss + cfg.beta * (weights.to(kl.scalar_type()).unsqueeze(1) * mask * kl).sum();
    }

    torch::NoGradGuard no_grad;
    const auto m64 = mask.to(torch::kFloat64);
    auto coef_1 = cfg.delta ? torch::clamp_max(obj.ratio, *cfg.delta) : obj.ratio;
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
  // TRL's loss_type as the op's per-sequence weights (GT 3124-3150).
  static ops::Aggregation aggregation(const PolicyLossConfig& cfg) {
    if (cfg.loss_type == "grpo") return ops::Aggregation::TrlGrpo;
    if (cfg.loss_type == "bnpo") return ops::Aggregation::TrlBnpo;
    if (cfg.loss_type == "dr_grpo") {
      if (cfg.max_completion_length < 1) config_error("dr_grpo needs max_completion_length >= 1, got {}", cfg.max_completion_length);
      return ops::Aggregation::TrlDrGrpo;
    }
    // dapo: num_items_in_batch counts the whole generation batch of all ranks; no division by GA.
    if (cfg.loss_type == "dapo") return ops::Aggregation::TrlDapo;
    config_error("unknown loss_type '{}' (known: grpo, bnpo, dr_grpo, dapo)", cfg.loss_type);
  }
  static ops::AggregationParams params(const PolicyLossConfig& cfg) {
    ops::AggregationParams p;
    p.grad_accum = cfg.grad_accum;
    p.max_completion_length = cfg.max_completion_length;
    p.num_items_in_batch = cfg.num_items_in_batch;
    p.num_processes = std::max<int64_t>(1, cfg.num_processes);
    return p;
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
