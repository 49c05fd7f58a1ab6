// The causal-LM loss of a batch, computed only at labelled positions.
#pragma once
#include <map>
#include <string>

#include "gym/model/causal_lm.h"

namespace gym::recipes {

struct LmLoss {
  torch::Tensor loss;       // scalar: Σ CE over labelled next-token pairs / normaliser
  torch::Tensor aux_loss;   // MoE load-balancing loss (with the mask); undefined for dense models
  std::map<std::string, double> expert_stats;   // MoE router statistics (model::expert_statistics)
};

// input_ids/attention_mask/labels: [B, T]. normaliser: the number of labelled tokens of the whole
// optimizer step (so gradient accumulation averages per token, as HF's num_items_in_batch).
LmLoss causal_lm_loss(model::CausalLMImpl& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                      const torch::Tensor& labels, int64_t normaliser, bool gradient_checkpointing);

}  // namespace gym::recipes
