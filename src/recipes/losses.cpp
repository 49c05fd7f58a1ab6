#include "recipes/losses.h"

#include <torch/nn/functional/loss.h>

#include "gym/model/score.h"

namespace gym::recipes {

LmLoss causal_lm_loss(model::CausalLMImpl& model, const torch::Tensor& ids, const torch::Tensor& mask,
                      const torch::Tensor& labels, int64_t normaliser, bool gradient_checkpointing) {
  model::ForwardOptions fo;
  fo.attention_mask = mask;
  fo.gradient_checkpointing = gradient_checkpointing;
  fo.output_router_logits = model.config().is_moe();
  auto forward = model.hidden_states(ids, fo);
  const auto& hidden = forward.hidden;                                          // [B, T, H]
  const auto& router = forward.router_logits;
  const int64_t t = ids.size(1), h = hidden.size(2);
  auto targets = labels.narrow(1, 1, t - 1).reshape({-1});                        // [B*(T-1)]
  auto keep = (targets != -100).nonzero().squeeze(1);
  // Logits only where a label exists: the [B, T, V] tensor never materialises.
  auto rows = hidden.narrow(1, 0, t - 1).reshape({-1, h}).index_select(0, keep);
  auto logits = model.lm_logits(rows).to(torch::kFloat32);                       // [K, V]
  LmLoss out;
  out.loss = torch::nn::functional::cross_entropy(logits, targets.index_select(0, keep),
                                                  torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
             static_cast<double>(std::max<int64_t>(1, normaliser));
  if (!router.empty()) {
    out.aux_loss = model::load_balancing_loss(router, model.config().num_experts, model.config().num_experts_per_tok, mask);
    out.expert_stats = model::expert_statistics(router, model.config().num_experts, model.config().num_experts_per_tok, mask);
  }
  return out;
}

}  // namespace gym::recipes
