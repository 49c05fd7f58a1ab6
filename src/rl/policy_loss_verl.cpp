// verl's policy losses (CA 1025-1081 agg_loss, 1160-1326 vanilla/gspo, 1841-1902 kl_penalty; DA 560-656):
// the default-argument path of the legacy FSDP actor: local token/sequence counts, dp_size 1, and the
// micro-batch loss scaled by 1/gradient_accumulation.
#include <cmath>

#include "policy_loss_common.h"

namespace gym::rl {

namespace {

// verl_F.masked_mean: the +1e-8 keeps an empty mask finite.
torch::Tensor verl_masked_mean(const torch::Tensor& x, const torch::Tensor& mask) {
  return torch::where(mask > 0, x, torch::zeros_like(x)).sum() / (mask.sum() + 1e-8);
}

// agg_loss with its defaults: loss_mat, mask [B, T] → scalar.
torch::Tensor agg_loss(const torch::Tensor& loss_mat, const torch::Tensor& mask, const std::string& mode) {
  auto masked = torch::where(mask > 0, loss_mat, torch::zeros_like(loss_mat));
  if (mode == "token-mean") return masked.sum() / mask.sum().clamp_min(1.0);
  auto counts = mask.sum(-1);                                           // [B]
  auto seq_mask = (counts > 0).to(mask.scalar_type());                 // fully masked sequences do not count
  if (mode == "seq-mean-token-sum") return (masked.sum(-1) * seq_mask).sum() / seq_mask.sum().clamp_min(1.0);
  if (mode == "seq-mean-token-mean")
    return (masked.sum(-1) / (counts + 1e-8) * seq_mask).sum() / seq_mask.sum().clamp_min(1.0);
  if (mode == "seq-mean-token-sum-norm") return masked.sum() / static_cast<double>(mask.size(-1));   // padded length
  config_error("unknown loss_agg_mode '{}' (known: token-mean, seq-mean-token-sum, seq-mean-token-mean, seq-mean-token-sum-norm)",
               mode);
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
    auto neg_kl = t.logp - t.old;                                       // [B, T]
    const double lo = 1 - cfg.epsilon_low, hi = 1 + cfg.epsilon_high;
    PolicyLossOutput out;
    torch::Tensor pg_loss, clipfrac, clipfrac_lower, ppo_kl;
    if (mode_ == "vanilla") {
      if (!(cfg.clip_ratio_c > 1.0)) config_error("clip_ratio_c must be > 1, got {}", cfg.clip_ratio_c);
      neg_kl = torch::clamp(neg_kl, -20.0, 20.0);
      auto ratio = torch::exp(neg_kl);
      auto pg1 = -adv * ratio, pg2 = -adv * torch::clamp(ratio, lo, hi);
      auto clip1 = torch::maximum(pg1, pg2);
      auto pg3 = -adv * cfg.clip_ratio_c;                               // dual clip for A < 0
      auto pg = torch::where(adv < 0, torch::minimum(pg3, clip1), clip1);
      pg_loss = agg_loss(pg, mask, cfg.loss_agg_mode);
      clipfrac = verl_masked_mean((pg2 > pg1).to(mask.scalar_type()), mask);
      clipfrac_lower = verl_masked_mean(((clip1 > pg3) & (adv < 0)).to(mask.scalar_type()), mask);
      out.importance_weight = ratio.detach();
    } else {
      auto seq = (neg_kl * mask).sum(-1, true) / mask.sum(-1, true).clamp_min(1.0);   // [B, 1]
      auto log_r = torch::clamp_max(t.logp - t.logp.detach() + seq.detach(), 10.0);   // GSPO-token form
      auto ratio = torch::exp(log_r);
      auto pg1 = -adv * ratio, pg2 = -adv * torch::clamp(ratio, lo, hi);
      pg_loss = agg_loss(torch::maximum(pg1, pg2), mask, "seq-mean-token-mean");     // forced by verl
      clipfrac = verl_masked_mean((pg2 > pg1).to(mask.scalar_type()), mask);
      clipfrac_lower = torch::zeros({}, mask.options());
      out.importance_weight = ratio.detach();
    }
    ppo_kl = verl_masked_mean(-neg_kl.detach(), mask);
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
