#include "gym/nn/attention.h"

#include <cmath>
#include <limits>

#include "gym/core/profile.h"
#include "gym/ops/decode_attention.h"
#include "gym/ops/masked_softmax.h"
#include "gym/nn/rope.h"

namespace gym::nn {

AttentionImpl::AttentionImpl(const AttentionOptions& o, torch::TensorOptions t) : opts(o) {
  const int64_t q_out = o.heads * o.head_dim * (o.output_gate ? 2 : 1);
  q_proj = register_module("q_proj", Linear(o.hidden, q_out, t));
  k_proj = register_module("k_proj", Linear(o.hidden, o.kv_heads * o.head_dim, t));
  v_proj = register_module("v_proj", Linear(o.hidden, o.kv_heads * o.head_dim, t));
  o_proj = register_module("o_proj", Linear(o.heads * o.head_dim, o.hidden, t));
  q_norm = register_module("q_norm", RMSNorm(o.head_dim, o.eps, o.norm_unit_offset, t));
  k_norm = register_module("k_norm", RMSNorm(o.head_dim, o.eps, o.norm_unit_offset, t));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& cos,
                                     const torch::Tensor& sin, LayerCache* cache, int64_t past, int64_t capacity) {
  const int64_t b = x.size(0), t = x.size(1), nh = opts.heads, nkv = opts.kv_heads, d = opts.head_dim;
  torch::Tensor q, gate;
  if (opts.output_gate) {   // per head [q_h (D) | gate_h (D)]
    auto qg = q_proj(x).view({b, t, nh, 2 * d});
    q = qg.narrow(-1, 0, d);
    gate = qg.narrow(-1, d, d).reshape({b, t, nh * d});
  } else {
    q = q_proj(x).view({b, t, nh, d});
  }
  // Per-head RMSNorm before the transpose and RoPE.
  q = q_norm(q).transpose(1, 2);                                         // [B, nh, T, D]
  auto k = k_norm(k_proj(x).view({b, t, nkv, d})).transpose(1, 2);       // [B, nkv, T, D]
  auto v = v_proj(x).view({b, t, nkv, d}).transpose(1, 2);
  {
    GYM_PROFILE("norms/elementwise");
    q = apply_rotary(q, cos, sin);
    k = apply_rotary(k, cos, sin);
  }
  if (cache) {
    GYM_PROFILE("cache");
    auto& ck = cache->k;
    auto& cv = cache->v;
    if (!ck.defined() || past + t > ck.size(2)) {
      // (Re)allocate the buffers; rare: the capacity is set for a whole generation.
      const int64_t cap = std::max(capacity, past + t);
      auto nk = torch::zeros({b, nkv, cap, d}, k.options());
      auto nv = torch::zeros({b, nkv, cap, d}, v.options());
      if (ck.defined() && past > 0) {
        nk.narrow(2, 0, past).copy_(ck.narrow(2, 0, past));
        nv.narrow(2, 0, past).copy_(cv.narrow(2, 0, past));
      }
      ck = nk, cv = nv;
    }
    ck.narrow(2, past, t).copy_(k);
    cv.narrow(2, past, t).copy_(v);
    k = ck.narrow(2, 0, past + t);
    v = cv.narrow(2, 0, past + t);
  }
  // GQA: head j of q uses kv head j / groups. The queries of one kv head are stacked as rows
  // ([B, nkv, groups·T, D]) so k and v are used in place (no repeat_interleave copy of the cache)
  // and each batched matmul has groups× fewer, larger problems.
  GYM_PROFILE("attention");
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  if (cache && t == 1 && ops::decode_attention_applies(q, cache->k, cache->v, mask)) {   // one new token per row
    auto out = ops::decode_attention(q, cache->k, cache->v, past + 1, mask, scale).transpose(1, 2).reshape({b, t, nh * d});
    if (gate.defined()) out = out * torch::sigmoid(gate);
    return o_proj(out);
  }
  const int64_t groups = nh / nkv, s = k.size(2);
  auto qg = q.reshape({b, nkv, groups * t, d});
  auto raw = torch::matmul(qg, k.transpose(-1, -2));   // [B, nkv, groups·T, S]
  torch::Tensor probs;
  if (ops::masked_softmax_applies(raw.view({b, nh, t, s}), mask)) {   // float32 CPU: one op (mask [B, 1, T, S] over every head)
    probs = ops::masked_softmax(raw.view({b, nh, t, s}), mask, scale).view({b, nkv, groups * t, s});
  } else {
    auto scores = raw.view({b, nkv, groups, t, s}) * scale;
    if (mask.defined()) scores = scores + mask.unsqueeze(2);   // [B, 1, T, S] → [B, 1, 1, T, S]
    probs = torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type()).view({b, nkv, groups * t, s});
  }
  auto out = torch::matmul(probs, v).view({b, nh, t, d}).transpose(1, 2).reshape({b, t, nh * d});
  if (gate.defined()) out = out * torch::sigmoid(gate);
  return o_proj(out);
}

torch::Tensor causal_mask(const torch::Tensor& attention_mask, int64_t batch, int64_t t, int64_t past, const torch::Tensor& like) {
  const int64_t s = past + t;
  const auto dtype = like.scalar_type();
  const double min = dtype == torch::kFloat32 ? std::numeric_limits<float>::lowest()
                                              : (dtype == torch::kBFloat16 ? -3.3895313892515355e+38 : -65504.0);
  const auto idx = torch::TensorOptions().dtype(torch::kInt64).device(like.device());
  auto q_pos = torch::arange(past, s, idx).view({1, 1, t, 1});
  auto k_pos = torch::arange(0, s, idx).view({1, 1, 1, s});
  auto blocked = k_pos > q_pos;                                               // [1, 1, T, S]
  if (attention_mask.defined()) blocked = blocked | (attention_mask.to(like.device()).view({batch, 1, 1, s}) == 0);
  else blocked = blocked.expand({batch, 1, t, s});
  return torch::zeros(blocked.sizes(), like.options()).masked_fill(blocked, min);
}

torch::Tensor positions_from_mask(const torch::Tensor& attention_mask, int64_t t) {
  auto pos = (attention_mask.to(torch::kInt64).cumsum(-1) - 1).clamp_min(0);
  return pos.narrow(1, pos.size(1) - t, t);
}

}  // namespace gym::nn
