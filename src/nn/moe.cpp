#include "gym/nn/moe.h"

#include "gym/core/profile.h"
#include "gym/ops/swiglu.h"

namespace gym::nn {

MLPImpl::MLPImpl(int64_t hidden, int64_t inter, torch::TensorOptions o) {
  gate_proj = register_module("gate_proj", Linear(hidden, inter, o));
  up_proj = register_module("up_proj", Linear(hidden, inter, o));
  down_proj = register_module("down_proj", Linear(inter, hidden, o));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) {
  auto g = gate_proj(x), u = up_proj(x);
  torch::Tensor h;
  {
    GYM_PROFILE("norms/elementwise");
    h = ops::swiglu_applies(g, u) ? ops::swiglu(g, u) : ops::swiglu_reference(g, u);
  }
  return down_proj(h);
}

SparseMoeImpl::SparseMoeImpl(const MoeOptions& o, torch::TensorOptions t) : opts(o) {
  gate = register_module("gate", Linear(o.hidden, o.num_experts, t));
  gate->role = LinearRole::kRouter;
  experts = register_module("experts", torch::nn::ModuleList());
  for (int64_t e = 0; e < o.num_experts; ++e) experts->push_back(MLP(o.hidden, o.expert_intermediate, t));
  if (o.shared_expert_intermediate > 0) {
    shared_expert = register_module("shared_expert", MLP(o.hidden, o.shared_expert_intermediate, t));
    shared_expert_gate = register_module("shared_expert_gate", Linear(o.hidden, 1, t));
    shared_expert_gate->role = LinearRole::kGate;
  }
}

std::pair<torch::Tensor, torch::Tensor> SparseMoeImpl::forward(const torch::Tensor& x) {
  const auto shape = x.sizes().vec();
  const int64_t top_k = opts.top_k;
  auto xs = x.reshape({-1, shape.back()});                                    // [N, H]
  auto router_logits = gate(xs);                                              // [N, E]
  auto probs = torch::softmax(router_logits, -1, torch::kFloat32);
  auto [w, idx] = probs.topk(top_k, -1);                                      // [N, k]
  if (opts.norm_topk_prob) w = w / w.sum(-1, true);
  w = w.to(xs.scalar_type());
  auto out = torch::zeros_like(xs);
  // Group (token, slot) pairs by expert: cost grows with N·k, not N·E.
  auto flat_expert = idx.reshape({-1});                                       // [N*k]
  auto order = flat_expert.argsort(/*stable=*/true);                          // pair id = token*k + slot
  auto counts = torch::bincount(flat_expert, {}, opts.num_experts).to(torch::kCPU);
  const int64_t* cnt = counts.data_ptr<int64_t>();
  int64_t start = 0;
  auto flat_w = w.reshape({-1});
  for (int64_t e = 0; e < opts.num_experts; ++e) {
    if (cnt[e] == 0) continue;
    auto pairs = order.narrow(0, start, cnt[e]);
    start += cnt[e];
    auto tokens = torch::div(pairs, top_k, "floor");
    auto y = experts[e]->as<MLPImpl>()->forward(xs.index_select(0, tokens));
    out.index_add_(0, tokens, y * flat_w.index_select(0, pairs).unsqueeze(-1));
  }
  if (shared_expert) out = out + torch::sigmoid(shared_expert_gate(xs)) * shared_expert(xs);
  return {out.view(shape), router_logits};
}

}  // namespace gym::nn
