// verl's policy losses (CA 1025-1081 agg_loss, 1160-1326 vanilla/gspo, 1841-1902 kl_penalty; DA 560-656):
// the default-argument path of the legacy FSDP actor: local token/sequence counts, dp_size 1, and the
// micro-batch loss scaled by 1/gradient_accumulation. The clipped objective (with verl's log-ratio
// clamps and dual clip) and agg_loss run in ops::clipped_policy_objective / ops::sequence_weights.
#include <cmath>

#include "gym/ops/policy_objective.h"
#include "policy_loss_common.h"

namespace gym::rl {

namespace {

// verl_F.masked_mean: the +1e-8 keeps an empty mask finite.
torch::Tensor verl_masked_mean(const torch::Tensor& x, const torch::Tensor& mask) {
  return torch::where(mask > 0, x, torch::zeros_like(x)).sum() / (mask.sum() + 1e-8);
}

// agg_loss's modes as the ops' per-sequence weights.
ops::Aggregation aggregation(const std::string& mode) {
  if (mode == "token-mean") return ops::Aggregation::VerlTokenMean;
  if (mode == "seq-mean-token-sum") return ops::Aggregation::VerlSeqMeanTokenSum;
  if (mode == "seq-mean-token-mean") return ops::Aggregation::VerlSeqMeanTokenMean;
  if (mode == "seq-mean-token-sum-norm") return ops::Aggregation::VerlSeqMeanTokenSumNorm;   // padded length
  config_error("unknown loss_agg_mode '{}' (known: token-mean, seq-mean-token-sum, seq-mean-token-mean, seq-mean-token-sum-norm)",
               mode);
}

// agg_loss with its defaults: loss_mat, mask [B, T] → scalar.
torch::Tensor agg_loss(const torch::Tensor& loss_mat, const torch::Tensor& mask, const std::string& mode) {
  auto w = ops::sequence_weights(mask, aggregation(mode)).to(loss_mat.scalar_type());   // [B]
  return (torch::where(mask > 0, loss_mat, torch::zeros_like(loss_mat)) * w.unsqueeze(1)).sum();
}

// low_var_kl (k3) with verl's clamps.
torch::Tensor low_var_kl(const torch::Tensor& logp, const torch::Tensor& ref) {
  auto kl = torch::clamp(ref - logp, -20.0, 20.0);
  return torch::clamp(torch::exp(kl) - kl - 1, -10.0, 10.0);
}

class VerlPolicyLoss : public PolicyLoss {
 public:
  explicit VerlPolicyLoss(std::string mode) : mode_(std::move(mode)) {}
  std::string name() const override { return "verl_" + mode_; }

  PolicyLossOutput compute(const PolicyLossInput& in, const PolicyLossConfig& cfg) const override {
    auto t = detail::prepare_inputs(name(), in, cfg);
    const auto& mask = t.mask;                                          // [B, T]
    auto adv = t.adv * mask;                                            // verl's A·response_mask: [B, T]
    const bool vanilla = mode_ == "vanilla";
    ops::PolicyObjectiveOptions o;
    o.eps_low = cfg.epsilon_low;
    o.eps_high = cfg.epsilon_high;
    if (vanilla) {   // token ratio, δ clamped to [−20, 20], dual clip for A < 0
      if (!(cfg.clip_ratio_c > 1.0)) config_error("clip_ratio_c must be > 1, got {}", cfg.clip_ratio_c);
      o.level = ops::RatioLevel::Token;
      o.log_ratio_min = -20.0;
      o.log_ratio_max = 20.0;
      o.dual_clip = cfg.clip_ratio_c;
    } else {         // GSPO-token form, log-ratio ≤ 10, no dual clip
      o.level = ops::RatioLevel::SequenceToken;
      o.log_ratio_max = 10.0;
    }
    const auto kl_agg = aggregation(cfg.loss_agg_mode);                 // validated for both modes
    const auto pg_agg = vanilla ? kl_agg : ops::Aggregation::VerlSeqMeanTokenMean;   // forced by verl for gspo
    auto obj = ops::clipped_policy_objective(t.logp, t.old, adv, mask, ops::sequence_weights(mask, pg_agg), o);
    auto pg_loss = obj.loss;
    PolicyLossOutput out;
    out.importance_weight = obj.ratio;                                  // [B, T]

    torch::Tensor clipfrac, clipfrac_lower;
    {
      torch::NoGradGuard no_grad;
      const double lo = 1 - cfg.epsilon_low, hi = 1 + cfg.epsilon_high;
      auto pg1 = -adv * obj.ratio, pg2 = -adv * torch::clamp(obj.ratio, lo, hi);
      clipfrac = verl_masked_mean((pg2 > pg1).to(mask.scalar_type()), mask);
      if (vanilla) {
        auto clip1 = torch::maximum(pg1, pg2), pg3 = -adv * cfg.clip_ratio_c;
        clipfrac_lower = verl_masked_mean(((clip1 > pg3) & (adv < 0)).to(mask.scalar_type()), mask);
      } else {
        clipfrac_lower = torch::zeros({}, mask.options());
      }
    }
    auto neg_kl = (t.logp - t.old).detach();
    if (vanilla) neg_kl = torch::clamp(neg_kl, -20.0, 20.0);
    auto ppo_kl = verl_masked_mean(-neg_kl, mask);
    auto loss = pg_loss;
    if (cfg.beta != 0.0) {   // use_kl_loss: aggregated on its own with the configured loss_agg_mode
      auto kl_loss = agg_loss(low_var_kl(t.logp, t.ref), mask, cfg.loss_agg_mode);
      loss = loss + cfg.beta * kl_loss;
      out.metrics["actor/kl_loss"] = detail::to_double(kl_loss);
      out.metrics["actor/kl_coef"] = cfg.beta;
    }
    out.loss = loss / static_cast<double>(cfg.grad_accum);
    out.metrics["actor/pg_loss"] = detail::to_double(pg_loss);
    out.metrics["actor/pg_clipfrac"] = detail::to_double(clipfrac);
    out.metrics["actor/pg_clipfrac_lower"] = detail::to_double(clipfrac_lower);
    out.metrics["actor/ppo_kl"] = detail::to_double(ppo_kl);
    return out;
  }

 private:
  std::string mode_;
};

}  // namespace

std::unique_ptr<PolicyLoss> make_verl_policy_loss(const std::string& mode) { return std::make_unique<VerlPolicyLoss>(mode); }

}  // namespace gym::rl
