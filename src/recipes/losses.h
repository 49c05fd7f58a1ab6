// The causal-LM loss of a batch, computed only at labelled positions.
#pragma once
#include <map>
#include <string>

#include "gym/dist/comm.h"
#include "gym/model/causal_lm.h"

namespace gym::recipes {

struct LmLoss {
  torch::Tensor loss;       // scalar: Σ CE over labelled next-token pairs / normaliser
  torch::Tensor aux_loss;   // MoE load-balancing loss (with the mask); undefined for dense models
  std::map<std::string, double> expert_stats;   // MoE router statistics (model::expert_statistics)
};

// input_ids/attention_mask/labels: [B, T]. normaliser: the number of labelled tokens of the whole
// optimizer step (so gradient accumulation averages per token, as HF's num_items_in_batch).
// global_balance: with it, aux_loss is this rank's share of the global batch's balancing loss
// (global_load_balancing_share); without, the rank's own (transformers' load_balancing_loss).
LmLoss causal_lm_loss(model::CausalLMImpl& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                      const torch::Tensor& labels, int64_t normaliser, bool gradient_checkpointing,
                      dist::Communicator* global_balance = nullptr);

// Qwen3's global-batch load balancing, split over ranks: the expert token fractions f [k, E] and
// the token count T are all-reduced (no gradient), router probabilities stay local:
//   share_r = E · Σ_{k,e} f_ke · (Σ_{t∈r} p_te) / T,   Σ_r share_r = load_balancing_loss(all ranks' tokens).
// router_logits: per MoE layer [B*T, E]; attention_mask [B, T]. Summed gradients are exact.
torch::Tensor global_load_balancing_share(const std::vector<torch::Tensor>& router_logits, int64_t num_experts, int64_t top_k,
                                          const torch::Tensor& attention_mask, dist::Communicator& comm);

}  // namespace gym::recipes
