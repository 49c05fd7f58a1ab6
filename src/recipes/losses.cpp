#include "recipes/losses.h"

#include <torch/nn/functional/loss.h>

#include "gym/core/profile.h"
#include "gym/model/score.h"
#include "gym/ops/linear_cross_entropy.h"

namespace gym::recipes {

torch::Tensor global_load_balancing_share(const std::vector<torch::Tensor>& router_logits, int64_t num_experts, int64_t top_k,
                                          const torch::Tensor& attention_mask, dist::Communicator& comm) {
  auto g = torch::cat(router_logits, 0);                                  // [L*N, E]
  auto probs = torch::softmax(g, -1);
  auto selected = std::get<1>(probs.topk(top_k, -1));                     // [L*N, k]
  auto expert_mask = torch::one_hot(selected, num_experts).to(probs.scalar_type());   // [L*N, k, E]
  const int64_t b = attention_mask.size(0), s = attention_mask.size(1), layers = g.size(0) / (b * s);
  auto m = attention_mask.to(probs.scalar_type()).view({1, b * s}).expand({layers, b * s}).reshape({-1, 1});   // [L*N, 1]
  torch::Tensor counts, tokens;
  {
    torch::NoGradGuard ng;
    // [k·E + 1]: routed slots per (k, e) and the masked token count, summed over ranks in float64
    auto local = torch::cat({(expert_mask * m.unsqueeze(2)).sum(0).reshape({-1}).to(torch::kFloat64), m.sum().reshape({1}).to(torch::kFloat64)});
    comm.all_reduce(local);
    counts = local.narrow(0, 0, top_k * num_experts).view({top_k, num_experts});
    tokens = local[top_k * num_experts];
  }
  auto fractions = (counts / tokens).to(probs.scalar_type());             // [k, E]
  auto prob_share = (probs * m).sum(0) / tokens.to(probs.scalar_type());   // [E] this rank's part of the global mean
  return (fractions * prob_share.unsqueeze(0)).sum() * num_experts;
}

LmLoss causal_lm_loss(model::CausalLMImpl& model, const torch::Tensor& ids, const torch::Tensor& mask,
                      const torch::Tensor& labels, int64_t normaliser, bool gradient_checkpointing, dist::Communicator* global_balance) {
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
  auto rows = hidden.narrow(1, 0, t - 1).reshape({-1, h}).index_select(0, keep);   // [K, H]
  auto kept = targets.index_select(0, keep);
  LmLoss out;
  const auto head = model.plain_head_weight();
  torch::Tensor summed;
  {
    GYM_PROFILE("lm_head");
    if (head.defined() && !(head.requires_grad() && torch::GradMode::is_enabled())) {
      summed = ops::linear_cross_entropy(rows, head, kept);   // the [K, V] logits never materialise
    } else {
      auto logits = model.lm_logits(rows).to(torch::kFloat32);                     // [K, V]
      summed = torch::nn::functional::cross_entropy(logits, kept, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    }
  }
  out.loss = summed / static_cast<double>(std::max<int64_t>(1, normaliser));
  if (!router.empty()) {
    out.aux_loss = global_balance ? global_load_balancing_share(router, model.config().num_experts, model.config().num_experts_per_tok,
                                                                mask, *global_balance)
                                  : model::load_balancing_loss(router, model.config().num_experts, model.config().num_experts_per_tok, mask);
    out.expert_stats = model::expert_statistics(router, model.config().num_experts, model.config().num_experts_per_tok, mask);
  }
  return out;
}

}  // namespace gym::recipes
