#include "gym/nn/layers.h"

#include <torch/nn/functional/linear.h>

#include <cmath>

namespace gym::nn {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, torch::TensorOptions options) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}, options));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto xf = x.to(torch::kFloat32);
  xf = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return weight * xf.to(x.scalar_type());
}

Rope::Rope(const model::ArchConfig& c) {
  const int64_t d = c.head_dim;
  // θ^(2i/D) in float32, as transformers computes it.
  auto exponents = torch::arange(0, d, 2, torch::kInt64).to(torch::kFloat32) / static_cast<float>(d);
  auto pos_freqs = torch::pow(torch::tensor(static_cast<float>(c.rope_theta)), exponents);
  inv_freq = 1.0 / pos_freqs;
  if (c.rope_scaling.type == "yarn") {
    const auto& r = c.rope_scaling;
    double factor = r.factor;
    // transformers 4.5x recomputes the factor when original_max_position_embeddings is given.
    const double orig = static_cast<double>(r.original_max_position_embeddings.value_or(c.max_position_embeddings));
    if (r.original_max_position_embeddings) factor = static_cast<double>(c.max_position_embeddings) / orig;
    attention_scaling = r.attention_factor.value_or(0.1 * std::log(factor) + 1.0);
    auto corr = [&](double rot) { return d * std::log(orig / (rot * 2 * M_PI)) / (2 * std::log(c.rope_theta)); };
    double low = corr(r.beta_fast), high = corr(r.beta_slow);
    if (r.truncate) low = std::floor(low), high = std::ceil(high);
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(d - 1));
    if (low == high) high += 0.001;   // avoid a zero division, as transformers does
    auto ramp = ((torch::arange(d / 2, torch::kFloat32) - low) / (high - low)).clamp(0, 1);
    auto extrapolation_weight = 1 - ramp;
    auto extrap = 1.0 / pos_freqs;
    auto interp = 1.0 / (factor * pos_freqs);
    inv_freq = interp * (1 - extrapolation_weight) + extrap * extrapolation_weight;
  }
}

std::pair<torch::Tensor, torch::Tensor> Rope::tables(const torch::Tensor& position_ids, torch::Dtype dtype) const {
  auto freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) * inv_freq.view({1, 1, -1});  // [B, T, D/2]
  auto emb = torch::cat({freqs, freqs}, -1);                                               // [B, T, D]
  auto cos = (emb.cos() * attention_scaling).to(dtype).unsqueeze(1);
  auto sin = (emb.sin() * attention_scaling).to(dtype).unsqueeze(1);
  return {cos, sin};
}

namespace {
torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}
}  // namespace

AttentionImpl::AttentionImpl(const model::ArchConfig& c, torch::TensorOptions o)
    : heads(c.num_attention_heads), kv_heads(c.num_key_value_heads), head_dim(c.head_dim) {
  q_proj = register_module("q_proj", Linear(c.hidden_size, heads * head_dim, o));
  k_proj = register_module("k_proj", Linear(c.hidden_size, kv_heads * head_dim, o));
  v_proj = register_module("v_proj", Linear(c.hidden_size, kv_heads * head_dim, o));
  o_proj = register_module("o_proj", Linear(heads * head_dim, c.hidden_size, o));
  q_norm = register_module("q_norm", RMSNorm(head_dim, c.rms_norm_eps, o));
  k_norm = register_module("k_norm", RMSNorm(head_dim, c.rms_norm_eps, o));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& cos,
                                     const torch::Tensor& sin, KVCache* cache, int64_t layer) {
  const int64_t b = x.size(0), t = x.size(1);
  // Per-head RMSNorm before the transpose and RoPE.
  auto q = q_norm(q_proj(x).view({b, t, heads, head_dim})).transpose(1, 2);      // [B, nh, T, D]
  auto k = k_norm(k_proj(x).view({b, t, kv_heads, head_dim})).transpose(1, 2);   // [B, nkv, T, D]
  auto v = v_proj(x).view({b, t, kv_heads, head_dim}).transpose(1, 2);
  q = q * cos + rotate_half(q) * sin;
  k = k * cos + rotate_half(k) * sin;
  if (cache) {
    auto& ck = cache->k[layer];
    auto& cv = cache->v[layer];
    const int64_t past = cache->length;
    if (!ck.defined() || past + t > cache->capacity) {
      // Grow the preallocated buffers (rare: the capacity is set for a whole generation).
      const int64_t cap = std::max(cache->capacity, past + t);
      auto nk = torch::zeros({b, kv_heads, cap, head_dim}, k.options());
      auto nv = torch::zeros({b, kv_heads, cap, head_dim}, v.options());
      if (ck.defined() && past > 0) {
        nk.narrow(2, 0, past).copy_(ck.narrow(2, 0, past));
        nv.narrow(2, 0, past).copy_(cv.narrow(2, 0, past));
      }
      ck = nk, cv = nv;
      if (layer + 1 == static_cast<int64_t>(cache->k.size())) cache->capacity = cap;
    }
    ck.narrow(2, past, t).copy_(k);
    cv.narrow(2, past, t).copy_(v);
    k = ck.narrow(2, 0, past + t);
    v = cv.narrow(2, 0, past + t);
  }
  const int64_t groups = heads / kv_heads;
  if (groups > 1) {   // head j of q uses kv head j / groups
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
  }
  auto scores = torch::matmul(q, k.transpose(-1, -2)) * (1.0 / std::sqrt(static_cast<double>(head_dim)));
  if (mask.defined()) scores = scores + mask;
  auto probs = torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type());
  auto out = torch::matmul(probs, v).transpose(1, 2).reshape({b, t, heads * head_dim});
  return o_proj(out);
}

MLPImpl::MLPImpl(int64_t hidden, int64_t inter, torch::TensorOptions o) {
  gate_proj = register_module("gate_proj", Linear(hidden, inter, o));
  up_proj = register_module("up_proj", Linear(hidden, inter, o));
  down_proj = register_module("down_proj", Linear(inter, hidden, o));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) { return down_proj(torch::silu(gate_proj(x)) * up_proj(x)); }

SparseMoeImpl::SparseMoeImpl(const model::ArchConfig& c, torch::TensorOptions o)
    : num_experts(c.num_experts), top_k(c.num_experts_per_tok), norm_topk_prob(c.norm_topk_prob) {
  gate = register_module("gate", Linear(c.hidden_size, c.num_experts, o));
  experts = register_module("experts", torch::nn::ModuleList());
  for (int64_t e = 0; e < c.num_experts; ++e) experts->push_back(MLP(c.hidden_size, c.moe_intermediate_size, o));
}

std::pair<torch::Tensor, torch::Tensor> SparseMoeImpl::forward(const torch::Tensor& x) {
  const auto shape = x.sizes().vec();
  auto xs = x.reshape({-1, shape.back()});                                    // [N, H]
  auto router_logits = gate(xs);                                              // [N, E]
  auto probs = torch::softmax(router_logits, -1, torch::kFloat32);
  auto [w, idx] = probs.topk(top_k, -1);                                      // [N, k]
  if (norm_topk_prob) w = w / w.sum(-1, true);
  w = w.to(xs.scalar_type());
  auto out = torch::zeros_like(xs);
  // Group (token, slot) pairs by expert: cost grows with N·k, not N·E.
  auto flat_expert = idx.reshape({-1});                                       // [N*k]
  auto order = flat_expert.argsort(/*stable=*/true);
  auto counts = torch::bincount(flat_expert, {}, num_experts).to(torch::kCPU);
  auto sorted_pairs = order;                                                  // pair id = token*k + slot
  const int64_t* cnt = counts.data_ptr<int64_t>();
  int64_t start = 0;
  auto flat_w = w.reshape({-1});
  for (int64_t e = 0; e < num_experts; ++e) {
    if (cnt[e] == 0) continue;
    auto pairs = sorted_pairs.narrow(0, start, cnt[e]);
    start += cnt[e];
    auto tokens = torch::div(pairs, top_k, "floor");
    auto y = experts[e]->as<MLPImpl>()->forward(xs.index_select(0, tokens));
    out.index_add_(0, tokens, y * flat_w.index_select(0, pairs).unsqueeze(-1));
  }
  return {out.view(shape), router_logits};
}

torch::Tensor causal_mask(const torch::Tensor& attention_mask, int64_t batch, int64_t t, int64_t past, torch::Dtype dtype) {
  const int64_t s = past + t;
  const double min = dtype == torch::kFloat32 ? std::numeric_limits<float>::lowest()
                                              : (dtype == torch::kBFloat16 ? -3.3895313892515355e+38 : -65504.0);
  auto q_pos = torch::arange(past, s, torch::kInt64).view({1, 1, t, 1});
  auto k_pos = torch::arange(0, s, torch::kInt64).view({1, 1, 1, s});
  auto blocked = k_pos > q_pos;                                               // [1, 1, T, S]
  if (attention_mask.defined()) blocked = blocked | (attention_mask.view({batch, 1, 1, s}) == 0);
  else blocked = blocked.expand({batch, 1, t, s});
  return torch::zeros(blocked.sizes(), torch::TensorOptions().dtype(dtype)).masked_fill(blocked, min);
}

torch::Tensor positions_from_mask(const torch::Tensor& attention_mask, int64_t t) {
  auto pos = (attention_mask.to(torch::kInt64).cumsum(-1) - 1).clamp_min(0);
  return pos.narrow(1, pos.size(1) - t, t);
}

}  // namespace gym::nn
