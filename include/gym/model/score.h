// Scoring token sequences: logits, next-token log-probs and the mean next-token loss.
#pragma once
#include <map>
#include <optional>
#include <string>

#include "gym/model/causal_lm.h"

namespace gym::model {

struct ScoreResult {
  torch::Tensor logits;     // [B, T, V] float32
  torch::Tensor logprobs;   // [B, T-1] log p(token t+1 | ≤ t); 0 where either token is padding
  double loss = 0.0;        // mean −logprob over pairs whose two tokens are unpadded
  std::optional<double> aux_loss;   // MoE: the load-balancing loss (unscaled, with the mask)
};

// input_ids/attention_mask: [B, T]; position_ids optional (default clamp(cumsum(mask) − 1, 0)).
ScoreResult score(CausalLMImpl& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                  const torch::Tensor& position_ids = {});

// transformers' load_balancing_loss_func over the router logits of every MoE layer (each
// [B*T, E]), with the attention-mask variant when mask [B, T] is given.
torch::Tensor load_balancing_loss(const std::vector<torch::Tensor>& router_logits, int64_t num_experts, int64_t top_k,
                                  const torch::Tensor& attention_mask = {});

// Router statistics averaged over MoE layers, over unmasked tokens: moe/max_load and
// moe/min_load (the busiest and idlest expert's share of routed slots relative to uniform: 1 =
// balanced), moe/routing_entropy (nats, of the softmax over experts) and moe/idle_experts (the
// number of (layer, expert) pairs that got no token), and moe/expert_load/<e> for each expert e
// (its share relative to uniform, averaged over layers: the report's heat map).
std::map<std::string, double> expert_statistics(const std::vector<torch::Tensor>& router_logits, int64_t num_experts,
                                                int64_t top_k, const torch::Tensor& attention_mask = {});

}  // namespace gym::model
