// GRPO / GSPO / GSPO-token policy losses exactly as TRL computes them (specs/gspo_grpo.md), plus
// group advantages and per-token log-probs. Pure tensor functions: no model, no config structs.
#pragma once
#include <torch/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gym::rl {

// log softmax(logits / temperature)[ids]: logits [B, T, V], ids [B, T] → [B, T].
// float32/64: gather − logsumexp row by row; bfloat16: log_softmax per row (TRL's stable path).
torch::Tensor selective_log_softmax(const torch::Tensor& logits, const torch::Tensor& ids, double temperature);
// Entropy of softmax(logits / temperature): [B, T, V] → [B, T] (no gradient).
torch::Tensor entropy_from_logits(const torch::Tensor& logits, double temperature);

struct AdvantageResult {
  torch::Tensor advantages;             // [B]; 0 where no reward function could score
  torch::Tensor rewards;                // [B] weighted sum (nansum) of the reward functions
  std::map<std::string, double> metrics;   // reward, reward_std, frac_reward_zero_std
};
// rewards: [B, F] (NaN = could not score), weights: F, groups of G consecutive rows.
// A = (r − group mean) / (σ + 1e-4) with σ the group's (group) or the batch's (batch) nanstd with
// Bessel's correction, or no division (none).
AdvantageResult group_advantages(const torch::Tensor& rewards, const std::vector<double>& weights, int64_t group_size,
                                 const std::string& scale_rewards);

struct PolicyLossConfig {
  std::string loss_type = "dapo";       // grpo | bnpo | dr_grpo | dapo
  double epsilon_low = 0.2, epsilon_high = 0.2;
  std::optional<double> delta;          // two-sided clip of the ratio
  double beta = 0.0;                    // k3 KL coefficient
  int64_t max_completion_length = 256;  // dr_grpo's normaliser
  int64_t grad_accum = 1;               // TRL divides grpo/bnpo/dr_grpo by it
  double num_items_in_batch = 0;        // dapo: masked tokens of the whole generation batch (all ranks)
  int64_t num_processes = 1;
};

struct PolicyLossInput {
  torch::Tensor logp;         // [B, T] current policy (requires grad)
  torch::Tensor old_logp;     // [B, T] or undefined: on-policy, logp.detach()
  torch::Tensor ref_logp;     // [B, T] reference (base model) when beta > 0
  torch::Tensor advantages;   // [B]
  torch::Tensor mask;         // [B, T] completion mask
};

struct PolicyLossOutput {
  torch::Tensor loss;                 // scalar
  torch::Tensor importance_weight;    // coef_1: [B, T] (token, sequence_token) or [B, 1] (sequence)
  std::map<std::string, double> metrics;   // clip_ratio/{low_mean,high_mean,region_mean,low_min,high_max}, kl
};

// One interface, one level deep; the importance ratio is what differs between the losses.
class PolicyLoss {
 public:
  virtual ~PolicyLoss() = default;
  virtual std::string name() const = 0;
  // log of the importance weight (before exp): [B, T] or [B, 1]
  virtual torch::Tensor log_importance_weight(const torch::Tensor& logp, const torch::Tensor& old_logp,
                                              const torch::Tensor& mask) const = 0;
  PolicyLossOutput compute(const PolicyLossInput& in, const PolicyLossConfig& cfg) const;
};

// Registry: "grpo" (token level), "gspo" (sequence), "gspo_token" (sequence_token). Also accepts
// the importance_sampling_level names token / sequence / sequence_token.
std::unique_ptr<PolicyLoss> make_policy_loss(const std::string& name);
std::vector<std::string> policy_loss_names();

}  // namespace gym::rl
