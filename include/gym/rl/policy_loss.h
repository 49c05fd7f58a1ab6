// Policy losses of group RL behind one interface (specs/gspo_grpo.md §3-§6, §9):
//   TRL:  "grpo" (token-level ratio), "gspo" (sequence-level ratio), "gspo_token" (GSPO-token), each
//         aggregated by loss_type grpo | bnpo | dr_grpo | dapo, with the k3 KL term added per token;
//   verl: "verl_vanilla" (PPO clip with dual clip) and "verl_gspo", aggregated by loss_agg_mode, with
//         the low_var_kl term aggregated separately.
// Pure tensor functions: the caller supplies log-probs (see logprobs.h) and advantages.
#pragma once
#include <torch/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gym::rl {

struct PolicyLossInput {
  torch::Tensor logp;        // [B, T] current policy, requires grad
  torch::Tensor old_logp;    // [B, T] sampling policy, or undefined: on-policy, logp.detach()
  torch::Tensor ref_logp;    // [B, T] reference policy; needed when beta != 0
  torch::Tensor advantages;  // [B] (or [B, T])
  torch::Tensor mask;        // [B, T] completion mask (any dtype; nonzero = counted)
};

struct PolicyLossConfig {
  std::string loss_type = "dapo";       // TRL aggregation: grpo | bnpo | dr_grpo | dapo
  double epsilon_low = 0.2;             // TRL `epsilon` / verl clip_ratio_low
  double epsilon_high = 0.2;            // TRL `epsilon_high` (resolved: epsilon when unset) / verl clip_ratio_high
  std::optional<double> delta;          // TRL two-sided clip: caps the unclipped ratio
  double beta = 0.0;                    // TRL: k3 KL coefficient; verl: kl_loss_coef (0 = use_kl_loss off)
  int64_t max_completion_length = 256;  // dr_grpo's normaliser
  int64_t grad_accum = 1;               // current gradient accumulation steps: grpo/bnpo/dr_grpo and verl divide by it
  double num_items_in_batch = 0;        // dapo: masked tokens of the whole generation batch over all ranks (≤0: local count)
  int64_t num_processes = 1;            // dapo
  std::string loss_agg_mode = "token-mean";   // verl: token-mean | seq-mean-token-sum | seq-mean-token-mean | seq-mean-token-sum-norm
  double clip_ratio_c = 3.0;            // verl vanilla: dual-clip bound for negative advantages (> 1)
};

struct PolicyLossOutput {
  torch::Tensor loss;                     // scalar, ready for backward()
  torch::Tensor importance_weight;        // detached ratio: [B, T], or [B, 1] for "gspo"
  std::map<std::string, double> metrics;  // TRL: clip_ratio/{low_mean,high_mean,region_mean,low_min,high_max}, kl (beta≠0)
                                          // verl: actor/{pg_loss,pg_clipfrac,ppo_kl,pg_clipfrac_lower}, actor/kl_loss
};

class PolicyLoss {
 public:
  virtual ~PolicyLoss() = default;
  virtual std::string name() const = 0;
  virtual PolicyLossOutput compute(const PolicyLossInput& in, const PolicyLossConfig& cfg) const = 0;
};

// Registry. Names: grpo, gspo, gspo_token, verl_vanilla, verl_gspo; TRL's importance_sampling_level
// values token, sequence, sequence_token are accepted as aliases. Unknown → config_error.
std::unique_ptr<PolicyLoss> make_policy_loss(const std::string& name);
std::vector<std::string> policy_loss_names();

}  // namespace gym::rl
