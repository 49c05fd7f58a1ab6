#include "gym/model/score.h"

namespace gym::model {

torch::Tensor load_balancing_loss(const std::vector<torch::Tensor>& router_logits, int64_t num_experts, int64_t top_k,
                                  const torch::Tensor& attention_mask) {
  if (router_logits.empty()) return torch::zeros({}, attention_mask.defined() ? attention_mask.options().dtype(torch::kFloat32) : torch::TensorOptions());
  auto g = torch::cat(router_logits, 0);                                 // [L*N, E]
  auto probs = torch::softmax(g, -1);                                    // no dtype argument, as transformers
  auto selected = std::get<1>(probs.topk(top_k, -1));                    // [L*N, k]
  auto expert_mask = torch::one_hot(selected, num_experts);              // [L*N, k, E]
  torch::Tensor tokens_per_expert, router_prob_per_expert;
  if (!attention_mask.defined()) {
    tokens_per_expert = expert_mask.to(torch::kFloat32).mean(0);         // [k, E]
    router_prob_per_expert = probs.mean(0);                              // [E]
  } else {
    const int64_t b = attention_mask.size(0), s = attention_mask.size(1);
    const int64_t layers = g.size(0) / (b * s);
    auto m = attention_mask.to(probs.scalar_type());
    auto mk = m.view({1, b, s, 1, 1}).expand({layers, b, s, top_k, num_experts}).reshape({-1, top_k, num_experts});
    tokens_per_expert = (expert_mask.to(probs.scalar_type()) * mk).sum(0) / mk.sum(0);
    auto mp = m.view({1, b, s, 1}).expand({layers, b, s, num_experts}).reshape({-1, num_experts});
    router_prob_per_expert = (probs * mp).sum(0) / mp.sum(0);
  }
  return (tokens_per_expert * router_prob_per_expert.unsqueeze(0)).sum() * num_experts;
}

std::map<std::string, double> expert_statistics(const std::vector<torch::Tensor>& router_logits, int64_t num_experts,
                                                int64_t top_k, const torch::Tensor& attention_mask) {
  torch::NoGradGuard ng;
  double max_load = 0, min_load = 0, entropy = 0, idle = 0;
  torch::Tensor load;   // [E] float64, each expert's share relative to uniform, summed over layers
  for (const auto& logits : router_logits) {
    auto probs = torch::softmax(logits.to(torch::kFloat32), -1);                       // [N, E]
    torch::Tensor keep = attention_mask.defined() ? attention_mask.reshape({-1}).to(torch::kBool)
                                                  : torch::ones({probs.size(0)}, probs.options().dtype(torch::kBool));
    probs = probs.index_select(0, keep.nonzero().squeeze(1));
    auto chosen = std::get<1>(probs.topk(top_k, -1)).reshape({-1});
    auto counts = torch::bincount(chosen, {}, num_experts).to(torch::kFloat64);       // [E]
    const double uniform = std::max(1.0, static_cast<double>(chosen.numel())) / static_cast<double>(num_experts);
    max_load += counts.max().item<double>() / uniform;
    min_load += counts.min().item<double>() / uniform;
    idle += (counts == 0).sum().item<double>();
    load = load.defined() ? load + counts / uniform : counts / uniform;
    entropy += -(probs * torch::log(probs.clamp_min(1e-30))).sum(-1).mean().item<double>();
  }
  const double layers = std::max<double>(1.0, static_cast<double>(router_logits.size()));
  std::map<std::string, double> stats = {{"moe/max_load", max_load / layers}, {"moe/min_load", min_load / layers},
                                         {"moe/routing_entropy", entropy / layers}, {"moe/idle_experts", idle}};
  if (load.defined()) {
    const auto host = (load / layers).cpu().contiguous();   // one copy from the device
    for (int64_t e = 0; e < num_experts; ++e) stats["moe/expert_load/" + std::to_string(e)] = host.data_ptr<double>()[e];
  }
  return stats;
}

ScoreResult score(CausalLMImpl& model, const torch::Tensor& ids, const torch::Tensor& mask,
                  const torch::Tensor& position_ids) {
  torch::NoGradGuard guard;
  ScoreResult r;
  ForwardOptions fo;
  fo.attention_mask = mask;
  fo.position_ids = position_ids;
  fo.output_router_logits = model.config().is_moe();
  auto out = model.hidden_states(ids, fo);
  r.logits = model.lm_logits(out.hidden).to(torch::kFloat32);
  const int64_t t = ids.size(1);
  auto logp = torch::log_softmax(r.logits.narrow(1, 0, t - 1), -1);                     // [B, T-1, V]
  auto next = ids.narrow(1, 1, t - 1);
  auto picked = logp.gather(2, next.unsqueeze(-1)).squeeze(-1);                         // [B, T-1]
  auto valid = (mask.narrow(1, 0, t - 1) * mask.narrow(1, 1, t - 1)).to(torch::kBool);
  r.logprobs = picked.masked_fill(~valid, 0.0);
  const double count = valid.sum().item<double>();
  r.loss = count > 0 ? -r.logprobs.sum().item<double>() / count : 0.0;
  if (model.config().is_moe())
    r.aux_loss = load_balancing_loss(out.router_logits, model.config().num_experts, model.config().num_experts_per_tok, mask).item<double>();
  return r;
}

}  // namespace gym::model
