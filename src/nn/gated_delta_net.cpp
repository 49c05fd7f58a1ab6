#include "gym/nn/gated_delta_net.h"

#include <ATen/ATen.h>

#include <cmath>

namespace gym::nn {

namespace {

torch::Tensor l2norm(const torch::Tensor& x) { return x * torch::rsqrt((x * x).sum(-1, true) + 1e-6); }

// [B, T, h, d] → [B, h, T, d] float32
torch::Tensor heads_first(const torch::Tensor& x) { return x.transpose(1, 2).contiguous().to(torch::kFloat32); }

}  // namespace

std::pair<torch::Tensor, torch::Tensor> chunk_gated_delta_rule(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                                               const torch::Tensor& g, const torch::Tensor& beta,
                                                               const torch::Tensor& initial_state, int64_t c) {
  const auto out_dtype = v.scalar_type();
  auto Q = heads_first(l2norm(q)), K = heads_first(l2norm(k)), V = heads_first(v);   // [B, h, T, d]
  auto G = g.transpose(1, 2).to(torch::kFloat32), Bt = beta.transpose(1, 2).to(torch::kFloat32);   // [B, h, T]
  const int64_t b = Q.size(0), h = Q.size(1), t = Q.size(2), dk = Q.size(3), dv = V.size(3);
  const int64_t pad = (c - t % c) % c, n = (t + pad) / c;
  if (pad) {   // zero keys, values and β: padded positions change nothing
    Q = at::constant_pad_nd(Q, {0, 0, 0, pad});
    K = at::constant_pad_nd(K, {0, 0, 0, pad});
    V = at::constant_pad_nd(V, {0, 0, 0, pad});
    G = at::constant_pad_nd(G, {0, pad});
    Bt = at::constant_pad_nd(Bt, {0, pad});
  }
  Q = Q * (1.0 / std::sqrt(static_cast<double>(dk)));
  auto chunks = [&](const torch::Tensor& x) { return x.reshape({b, h, n, c, x.size(-1)}); };
  auto k_beta = chunks(K * Bt.unsqueeze(-1)), v_beta = chunks(V * Bt.unsqueeze(-1));
  Q = chunks(Q), K = chunks(K);
  G = G.reshape({b, h, n, c}).cumsum(-1);                                           // within-chunk cumulative log-decay
  const auto bool_opts = torch::TensorOptions().dtype(torch::kBool).device(Q.device());
  auto lower = torch::ones({c, c}, bool_opts).tril();                               // j ≤ i
  auto strictly_lower = torch::ones({c, c}, bool_opts).tril(-1);
  auto decay = (G.unsqueeze(-1) - G.unsqueeze(-2)).masked_fill(~lower, 0).exp().masked_fill(~lower, 0);   // [B, h, n, C, C]
  // WY form: T = (I + A)⁻¹ with A = strictly-lower(βk·kᵀ ∘ decay); a unit-triangular solve.
  auto a = (torch::matmul(k_beta, K.transpose(-1, -2)) * decay).masked_fill(~strictly_lower, 0);
  auto eye = torch::eye(c, Q.options());
  auto tm = at::linalg_solve_triangular(eye + a, eye.expand_as(a), /*upper=*/false, /*left=*/true, /*unitriangular=*/true);
  auto value = torch::matmul(tm, v_beta);                                           // [B, h, n, C, dv]
  auto k_cumdecay = torch::matmul(tm, k_beta * G.exp().unsqueeze(-1));              // [B, h, n, C, dk]
  auto state = initial_state.defined() ? initial_state.to(torch::kFloat32) : torch::zeros({b, h, dk, dv}, Q.options());
  std::vector<torch::Tensor> outs;
  outs.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    auto q_i = Q.select(2, i), k_i = K.select(2, i), g_i = G.select(2, i);           // [B, h, C, dk], g_i [B, h, C]
    auto attn = (torch::matmul(q_i, k_i.transpose(-1, -2)) * decay.select(2, i)).masked_fill(~lower, 0);
    auto v_new = value.select(2, i) - torch::matmul(k_cumdecay.select(2, i), state);   // [B, h, C, dv]
    auto inter = torch::matmul(q_i * g_i.exp().unsqueeze(-1), state);
    outs.push_back(inter + torch::matmul(attn, v_new));
    auto g_last = g_i.narrow(-1, c - 1, 1);                                          // [B, h, 1]
    state = state * g_last.exp().unsqueeze(-1) +
            torch::matmul((k_i * (g_last - g_i).exp().unsqueeze(-1)).transpose(-1, -2), v_new);
  }
  auto o = torch::stack(outs, 2).reshape({b, h, n * c, dv}).narrow(2, 0, t).transpose(1, 2).contiguous().to(out_dtype);
  return {o, state};
}

std::pair<torch::Tensor, torch::Tensor> recurrent_gated_delta_rule(const torch::Tensor& q, const torch::Tensor& k,
                                                                   const torch::Tensor& v, const torch::Tensor& g,
                                                                   const torch::Tensor& beta, const torch::Tensor& initial_state) {
  const auto out_dtype = v.scalar_type();
  auto Q = heads_first(l2norm(q)), K = heads_first(l2norm(k)), V = heads_first(v);   // [B, h, T, d]
  auto G = g.transpose(1, 2).to(torch::kFloat32), Bt = beta.transpose(1, 2).to(torch::kFloat32);
  const int64_t b = Q.size(0), h = Q.size(1), t = Q.size(2), dk = Q.size(3), dv = V.size(3);
  Q = Q * (1.0 / std::sqrt(static_cast<double>(dk)));
  auto state = initial_state.defined() ? initial_state.to(torch::kFloat32) : torch::zeros({b, h, dk, dv}, Q.options());
  std::vector<torch::Tensor> outs;
  for (int64_t i = 0; i < t; ++i) {
    auto q_t = Q.select(2, i), k_t = K.select(2, i), v_t = V.select(2, i);          // [B, h, d]
    // S ← exp(g)·S;  δ = β(v − Sᵀk);  S ← S + k δᵀ;  o = Sᵀq
    state = state * G.select(2, i).exp().unsqueeze(-1).unsqueeze(-1);
    auto kv = (state * k_t.unsqueeze(-1)).sum(-2);                                   // [B, h, dv]
    auto delta = (v_t - kv) * Bt.select(2, i).unsqueeze(-1);
    state = state + k_t.unsqueeze(-1) * delta.unsqueeze(-2);
    outs.push_back((state * q_t.unsqueeze(-1)).sum(-2));
  }
  return {torch::stack(outs, 1).to(out_dtype), state};                              // [B, T, h, dv]
}

DepthwiseConvImpl::DepthwiseConvImpl(int64_t channels, int64_t kernel, torch::TensorOptions options) {
  weight = register_parameter("weight", torch::empty({channels, 1, kernel}, options));
}

GatedDeltaNetImpl::GatedDeltaNetImpl(const GatedDeltaNetOptions& o, torch::TensorOptions t) : opts(o) {
  const int64_t key_dim = o.num_k_heads * o.head_k_dim, value_dim = o.num_v_heads * o.head_v_dim;
  const int64_t channels = 2 * key_dim + value_dim;
  in_proj_qkvz = register_module("in_proj_qkvz", Linear(o.hidden, 2 * key_dim + 2 * value_dim, t));
  in_proj_ba = register_module("in_proj_ba", Linear(o.hidden, 2 * o.num_v_heads, t));
  conv1d = register_module("conv1d", DepthwiseConv(channels, o.conv_kernel, t));
  dt_bias = register_parameter("dt_bias", torch::ones({o.num_v_heads}, t));
  A_log = register_parameter("A_log", torch::zeros({o.num_v_heads}, t));
  norm = register_module("norm", RMSNormGated(o.head_v_dim, o.eps, t));
  out_proj = register_module("out_proj", Linear(value_dim, o.hidden, t));
}

torch::Tensor GatedDeltaNetImpl::forward(const torch::Tensor& x, const torch::Tensor& pad_mask, LayerCache* cache) {
  const int64_t b = x.size(0), t = x.size(1);
  const int64_t nk = opts.num_k_heads, nv = opts.num_v_heads, dk = opts.head_k_dim, dv = opts.head_v_dim;
  const int64_t r = nv / nk, kw = opts.conv_kernel, channels = 2 * nk * dk + nv * dv;
  auto h = pad_mask.defined() ? x * pad_mask.to(x.device(), x.scalar_type()).unsqueeze(-1) : x;
  // Grouped per key head: qkvz [q_g (dk) | k_g (dk) | v_g (r·dv) | z_g (r·dv)], ba [b_g (r) | a_g (r)].
  auto qkvz = in_proj_qkvz(h).view({b, t, nk, 2 * dk + 2 * r * dv});
  auto ba = in_proj_ba(h).view({b, t, nk, 2 * r});
  auto z = qkvz.narrow(-1, 2 * dk + r * dv, r * dv).reshape({b, t, nv, dv});
  auto bb = ba.narrow(-1, 0, r).reshape({b, t, nv}), a = ba.narrow(-1, r, r).reshape({b, t, nv});
  auto mixed = torch::cat({qkvz.narrow(-1, 0, dk).reshape({b, t, nk * dk}), qkvz.narrow(-1, dk, dk).reshape({b, t, nk * dk}),
                           qkvz.narrow(-1, 2 * dk, r * dv).reshape({b, t, nv * dv})},
                          -1).transpose(1, 2);                                      // [B, C, T], un-grouped [q | k | v]
  // Causal depthwise conv over the previous K inputs (the cache's, or zeros before t = 0).
  auto prev = cache && cache->conv_state.defined() ? cache->conv_state.to(mixed.scalar_type())
                                                   : torch::zeros({b, channels, kw}, mixed.options());
  auto full = torch::cat({prev, mixed}, -1);                                        // [B, C, K + T]
  const std::vector<int64_t> one = {1}, zero = {0};   // stride, padding, dilation
  auto conv = torch::silu(at::conv1d(full.narrow(-1, 1, kw - 1 + t), conv1d->weight, torch::Tensor(), one, zero, one, channels));   // [B, C, T]
  if (cache) cache->conv_state = full.narrow(-1, t, kw).detach();
  auto qkv = conv.transpose(1, 2);                                                  // [B, T, C]
  auto q = qkv.narrow(-1, 0, nk * dk).reshape({b, t, nk, dk});
  auto k = qkv.narrow(-1, nk * dk, nk * dk).reshape({b, t, nk, dk});
  auto v = qkv.narrow(-1, 2 * nk * dk, nv * dv).reshape({b, t, nv, dv});
  auto beta = torch::sigmoid(bb);
  auto g = -A_log.to(torch::kFloat32).exp() * torch::softplus(a.to(torch::kFloat32) + dt_bias.to(torch::kFloat32));   // [B, T, nv]
  if (r > 1) {   // value head j reads key head j / r: repeat_interleave(r, 2) as a broadcast copy
    q = q.unsqueeze(3).expand({b, t, nk, r, dk}).reshape({b, t, nk * r, dk});   // [B, T, nv, dk]
    k = k.unsqueeze(3).expand({b, t, nk, r, dk}).reshape({b, t, nk * r, dk});
  }
  torch::Tensor initial = cache && cache->recurrent_state.defined() ? cache->recurrent_state : torch::Tensor();
  auto [o, state] = (t == 1 && initial.defined()) || force_recurrent ? recurrent_gated_delta_rule(q, k, v, g, beta, initial)
                                                                     : chunk_gated_delta_rule(q, k, v, g, beta, initial);
  if (cache) cache->recurrent_state = state.detach();
  return out_proj(norm(o, z).reshape({b, t, nv * dv}));
}

}  // namespace gym::nn
