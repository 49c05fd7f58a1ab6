// The clipped policy objective of GRPO / GSPO / GSPO-token (TRL) and verl's vanilla / gspo, fused with
// the sequence log-ratio and the loss aggregation (specs/gspo_grpo.md §3, §4, §6). The KL term is not
// part of it: aggregations are linear, so a caller adds β·Σ_i w_i Σ_t m_it kl_it with the same weights.
#pragma once
#include <torch/types.h>

#include <limits>
#include <optional>

#include "gym/ops/ops.h"

namespace gym::ops {

// log s_i = Σ_t m_it (logp_it − old_it) / max(Σ_t m_it, 1): the GSPO sequence log-ratio.
// logp, old, mask: [B, T] → [B]; differentiable w.r.t. logp: ∂/∂logp_it = m_it / max(n_i, 1).
torch::Tensor sequence_log_ratio(const torch::Tensor& logp, const torch::Tensor& old, const torch::Tensor& mask);

enum class RatioLevel {
  Token = 0,          // GRPO: w_it = logp_it − old_it
  Sequence = 1,       // GSPO: w_i = log s_i, ratio [B, 1], gradient s_i·(1/n_i)Σ_t m ∇logp_t
  SequenceToken = 2,  // GSPO-token: the value of log s_i with the gradient of each token's logp
};

struct PolicyObjectiveOptions {
  RatioLevel level = RatioLevel::Sequence;
  double eps_low = 0.2, eps_high = 0.2;        // coef_2 = clamp(r, 1 − eps_low, 1 + eps_high)
  std::optional<double> delta;                 // TRL: coef_1 = min(r, delta), after coef_2 is taken
  double log_ratio_min = -std::numeric_limits<double>::infinity();   // clamp of the log-ratio w before exp:
  double log_ratio_max = std::numeric_limits<double>::infinity();    // verl vanilla ±20, verl gspo ≤ 10
  std::optional<double> dual_clip;             // verl vanilla: for A < 0, ℓ = min(ℓ, −A·c)
  Impl impl = Impl::Auto;
};

struct PolicyObjective {
  torch::Tensor loss;       // scalar Σ_i seq_weight_i Σ_t m_it ℓ_it, ℓ = −min(coef_1·A, coef_2·A); differentiable w.r.t. logp
  torch::Tensor ratio;      // detached r = exp(clamped w) before the delta cap: [B, T], or [B, 1] for Sequence
  torch::Tensor seq_loss;   // detached [B]: seq_weight_i Σ_t m_it ℓ_it
};

// logp: [B, T] float32/float64 (bfloat16/float16 are computed in float32); old: [B, T] (no gradient);
// adv: [B], [B, 1] or [B, T]; mask: [B, T] (nonzero = counted); seq_weight: [B] (see sequence_weights).
// The fused op computes the loss and its gradient in one pass; backward scales the saved gradient.
PolicyObjective clipped_policy_objective(const torch::Tensor& logp, const torch::Tensor& old, const torch::Tensor& adv,
                                         const torch::Tensor& mask, const torch::Tensor& seq_weight,
                                         const PolicyObjectiveOptions& opts);

// The reference: the same objective written as plain LibTorch expressions, gradient by autograd.
PolicyObjective clipped_policy_objective_reference(const torch::Tensor& logp, const torch::Tensor& old, const torch::Tensor& adv,
                                                   const torch::Tensor& mask, const torch::Tensor& seq_weight,
                                                   const PolicyObjectiveOptions& opts);

// The loss aggregations of the policy-loss registry as per-sequence weights w_i, so that
// aggregate(ℓ) = Σ_i w_i Σ_t m_it ℓ_it (n_i = Σ_t m_it, N = Σ n_i, S = #{i : n_i > 0}):
//   TrlGrpo 1/(max(n_i,1)·B·GA)   TrlBnpo 1/(max(N,1)·GA)   TrlDrGrpo 1/(B·max_completion_length·GA)
//   TrlDapo num_processes/max(num_items_in_batch (≤0: N), 1)
//   VerlTokenMean 1/max(N,1)   VerlSeqMeanTokenSum [n_i>0]/max(S,1)
//   VerlSeqMeanTokenMean [n_i>0]/((n_i + 1e-8)·max(S,1))   VerlSeqMeanTokenSumNorm 1/T
enum class Aggregation { TrlGrpo, TrlBnpo, TrlDrGrpo, TrlDapo, VerlTokenMean, VerlSeqMeanTokenSum, VerlSeqMeanTokenMean, VerlSeqMeanTokenSumNorm };
struct AggregationParams {
  int64_t grad_accum = 1;               // TRL grpo / bnpo / dr_grpo divide by it
  int64_t max_completion_length = 256;  // dr_grpo
  double num_items_in_batch = 0;        // dapo
  int64_t num_processes = 1;            // dapo
};
// mask: [B, T] → [B], float64 for a float64 mask else float32, on mask's device.
torch::Tensor sequence_weights(const torch::Tensor& mask, Aggregation agg, const AggregationParams& p = {});

}  // namespace gym::ops
