// The clipped policy objective of GRPO / GSPO / GSPO-token (and verl's clamps and dual clip), fused
// with the sequence log-ratio log s_i = Σ_t m_it (logp_it − old_it) / max(Σ_t m_it, 1): one block
// per sequence reduces the log-ratio, forms each token's loss, its weighted sum, and the gradient of
// that sum w.r.t. logp in the same launch (the backward pass only scales it).
#include <cmath>

#include "ops/kernels/device_util.cuh"

namespace gym::ops::kernels {
namespace {

template <typename A>
struct TokenLoss {
  A loss, dloss_dlogw, ratio;
};

// ℓ = −min(c1·A, c2·A) with c1 = min(r, δ), c2 = clamp(r, 1−ε_low, 1+ε_high), r = exp(clamp(lw)), and
// the verl dual clip min(ℓ, −A·c) for A < 0. Derivatives follow torch's: a tie sends half the
// gradient down each branch; a clamp passes it where the input lies inside the closed interval.
template <typename A>
__device__ TokenLoss<A> token_loss(const PolicyObjectiveArgs& a, A lw, A adv) {
  const A lo = A(a.log_ratio_min), hi = A(a.log_ratio_max);
  const A lwc = lw < lo ? lo : (lw > hi ? hi : lw);
  const A clamp_pass = (lw >= lo && lw <= hi) ? A(1) : A(0);
  const A r = exp(lwc);
  A c1 = r, c1_pass = A(1);
  if (a.has_delta) {
    c1 = r < A(a.delta) ? r : A(a.delta);
    c1_pass = r <= A(a.delta) ? A(1) : A(0);
  }
  const A rlo = A(1) - A(a.eps_low), rhi = A(1) + A(a.eps_high);
  const A c2 = r < rlo ? rlo : (r > rhi ? rhi : r);
  const A c2_pass = (r >= rlo && r <= rhi) ? A(1) : A(0);
  const A x = c1 * adv, y = c2 * adv;
  A loss, dr;
  if (x < y) { loss = -x; dr = -adv * c1_pass; }
  else if (x > y) { loss = -y; dr = -adv * c2_pass; }
  else { loss = -x; dr = -adv * (c1_pass + c2_pass) / A(2); }
  if (a.has_dual_clip && adv < A(0)) {
    const A cap = -adv * A(a.dual_clip);
    if (loss > cap) { loss = cap; dr = A(0); }
    else if (loss == cap) dr = dr / A(2);
  }
  return {loss, dr * r * clamp_pass, r};
}

template <typename A>
__global__ void policy_objective_kernel(PolicyObjectiveArgs a, const A* logp, const A* old, const A* adv, const A* mask,
                                        const A* seq_weight, A* seq_loss, A* ratio, A* grad) {
  __shared__ A scratch[32];
  const int64_t b = blockIdx.x, T = a.time, base = b * T;
  A md = 0, ms = 0;
  if (a.level != 0) {
    for (int64_t t = threadIdx.x; t < T; t += blockDim.x) {
      md += (logp[base + t] - old[base + t]) * mask[base + t];
      ms += mask[base + t];
    }
    md = dev::block_sum(md, scratch);
    ms = dev::block_sum(ms, scratch);
  }
  const A n = ms < A(1) ? A(1) : ms;
  const A seq = md / n;
  const A w = seq_weight[b];
  A loss_sum = 0, g_seq = 0;
  for (int64_t t = threadIdx.x; t < T; t += blockDim.x) {
    const A lp = logp[base + t], m = mask[base + t];
    const A av = a.adv_per_token ? adv[base + t] : adv[b];
    // level 2 takes the value of (sg[seq] + logp) − sg[logp], in torch's order of operations
    const A lw = a.level == 0 ? lp - old[base + t] : (a.level == 1 ? seq : (seq + lp) - lp);
    const TokenLoss<A> tl = token_loss(a, lw, av);
    const A weight = m * w;
    if (m != A(0)) loss_sum += weight * tl.loss;
    if (a.level == 1) {
      g_seq += weight * tl.dloss_dlogw;
      if (t == 0) ratio[b] = tl.ratio;
    } else {
      grad[base + t] = weight * tl.dloss_dlogw;
      ratio[base + t] = tl.ratio;
    }
  }
  if (a.level == 1 && T == 0 && threadIdx.x == 0) ratio[b] = exp(seq);
  loss_sum = dev::block_sum(loss_sum, scratch);
  if (a.level == 1) {
    g_seq = dev::block_sum(g_seq, scratch);
    for (int64_t t = threadIdx.x; t < T; t += blockDim.x) grad[base + t] = g_seq * mask[base + t] / n;
  }
  if (threadIdx.x == 0) seq_loss[b] = loss_sum;
}

template <typename A>
void launch_typed(const PolicyObjectiveArgs& a, const void* logp, const void* old, const void* adv, const void* mask,
                  const void* seq_weight, void* seq_loss, void* ratio, void* grad, cudaStream_t s) {
  policy_objective_kernel<A><<<static_cast<unsigned>(a.batch), 128, 0, s>>>(
      a, static_cast<const A*>(logp), static_cast<const A*>(old), static_cast<const A*>(adv), static_cast<const A*>(mask),
      static_cast<const A*>(seq_weight), static_cast<A*>(seq_loss), static_cast<A*>(ratio), static_cast<A*>(grad));
}

}  // namespace

std::string launch_policy_objective(const PolicyObjectiveArgs& a, Dtype dtype, const void* logp, const void* old, const void* adv,
                                    const void* mask, const void* seq_weight, void* seq_loss, void* ratio, void* grad_logp,
                                    void* stream) {
  if (a.batch == 0) return {};
  auto s = static_cast<cudaStream_t>(stream);
  if (dtype == Dtype::F32) launch_typed<float>(a, logp, old, adv, mask, seq_weight, seq_loss, ratio, grad_logp, s);
  else if (dtype == Dtype::F64) launch_typed<double>(a, logp, old, adv, mask, seq_weight, seq_loss, ratio, grad_logp, s);
  else return "policy_objective: float32 or float64 inputs expected";
  return dev::launch_status("policy_objective");
}

}  // namespace gym::ops::kernels
