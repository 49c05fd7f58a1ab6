// Internal helpers shared by the TRL and verl policy losses.
#pragma once
#include <torch/types.h>

#include <string>

#include "gym/core/error.h"
#include "gym/rl/policy_loss.h"
#include "shape_text.h"

namespace gym::rl::detail {

// Validated inputs in the dtype of logp: old/ref/mask/advantages all [B, T] or [B, 1].
struct LossTensors {
  torch::Tensor logp, old, ref, mask;   // [B, T]; ref undefined when beta == 0
  torch::Tensor adv;                    // [B, 1] or [B, T]
};

inline LossTensors prepare_inputs(const std::string& loss, const PolicyLossInput& in, const PolicyLossConfig& cfg) {
  LossTensors t;
  if (!in.logp.defined() || in.logp.dim() != 2) runtime_error("policy loss '{}': logp must be [B, T]", loss);
  const auto sizes = in.logp.sizes();
  auto same = [&](const torch::Tensor& x, const char* what) {
    if (x.sizes() != sizes) runtime_error("policy loss '{}': {} is {}, expected {} like logp", loss, what, shape_text(x), shape_text(sizes));
  };
  if (!in.mask.defined()) runtime_error("policy loss '{}': the completion mask is missing", loss);
  same(in.mask, "mask");
  t.logp = in.logp;
  t.mask = (in.mask != 0).to(in.logp.scalar_type());
  if (in.old_logp.defined()) same(in.old_logp, "old_logp");
  t.old = in.old_logp.defined() ? in.old_logp.to(in.logp.scalar_type()) : in.logp.detach();   // on-policy: ratio 1
  if (cfg.beta != 0.0) {
    if (!in.ref_logp.defined()) runtime_error("policy loss '{}': beta = {} needs the reference log-probs", loss, cfg.beta);
    same(in.ref_logp, "ref_logp");
    t.ref = in.ref_logp.to(in.logp.scalar_type());
  }
  if (!in.advantages.defined()) runtime_error("policy loss '{}': advantages are missing", loss);
  if (in.advantages.dim() == 1 && in.advantages.size(0) == sizes[0]) t.adv = in.advantages.unsqueeze(1);
  else if (in.advantages.sizes() == sizes) t.adv = in.advantages;
  else runtime_error("policy loss '{}': advantages are {}, expected [{}] or {}", loss, shape_text(in.advantages), sizes[0], shape_text(sizes));
  t.adv = t.adv.to(in.logp.scalar_type());
  if (cfg.epsilon_low < 0 || cfg.epsilon_high < 0)
    config_error("epsilon and epsilon_high must be >= 0, got {} and {}", cfg.epsilon_low, cfg.epsilon_high);
  if (cfg.grad_accum < 1) runtime_error("policy loss '{}': grad_accum must be >= 1, got {}", loss, cfg.grad_accum);
  return t;
}

inline double to_double(const torch::Tensor& x) { return x.detach().to(torch::kFloat64).item<double>(); }

}  // namespace gym::rl::detail
