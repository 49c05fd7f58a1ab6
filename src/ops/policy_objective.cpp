// The fused clipped policy objective: autograd function (CUDA kernel or CPU twin), the twin, the
// reference, the sequence log-ratio and the aggregation weights.
#include "gym/ops/policy_objective.h"

#include <c10/core/DeviceGuard.h>
#include <torch/autograd.h>

#include "gym/core/error.h"
#include "ops/device.h"

namespace gym::ops {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Inputs {
  torch::Tensor logp, old, adv, mask, seq_weight;   // [B, T], [B, T], [B, 1] or [B, T], [B, T] 0/1, [B]
};

// The log importance weight w per level, as torch evaluates it: [B, T], or [B, 1] for Sequence.
torch::Tensor log_weight(const Inputs& in, RatioLevel level) {
  auto delta = in.logp - in.old;
  if (level == RatioLevel::Token) return delta;
  auto seq = (delta * in.mask).sum(-1, true) / in.mask.sum(-1, true).clamp_min(1.0);
  // GSPO-token: exp(sg[log s_i] + logp − sg[logp]): the value of s_i, the gradient of each token
  return level == RatioLevel::Sequence ? seq : (seq.detach() + in.logp) - in.logp.detach();
}

// ---- CPU twin: the kernel's formulas as LibTorch ops, forward and gradient in one pass.
struct TwinResult {
  torch::Tensor seq_loss, ratio, grad;   // [B], [B, T] or [B, 1], [B, T]
};
TwinResult twin(const Inputs& in, const PolicyObjectiveOptions& o) {
  torch::NoGradGuard no_grad;
  const auto one = torch::ones({}, in.logp.options()), zero = torch::zeros({}, in.logp.options());
  auto lw = log_weight({in.logp.detach(), in.old, in.adv, in.mask, in.seq_weight}, o.level);
  auto lwc = lw.clamp(o.log_ratio_min, o.log_ratio_max);
  auto clamp_pass = torch::where((lw >= o.log_ratio_min) & (lw <= o.log_ratio_max), one, zero);
  auto r = lwc.exp();
  auto c1 = o.delta ? r.clamp_max(*o.delta) : r;
  auto c1_pass = o.delta ? torch::where(r <= *o.delta, one, zero) : torch::ones_like(r);
  const double rlo = 1 - o.eps_low, rhi = 1 + o.eps_high;
  auto c2 = r.clamp(rlo, rhi);
  auto c2_pass = torch::where((r >= rlo) & (r <= rhi), one, zero);
  auto x = c1 * in.adv, y = c2 * in.adv;
  auto loss = -torch::min(x, y);
  auto dr = torch::where(x < y, -in.adv * c1_pass, torch::where(x > y, -in.adv * c2_pass, -in.adv * (c1_pass + c2_pass) / 2));
  if (o.dual_clip) {
    auto cap = -in.adv * *o.dual_clip;
    auto neg = in.adv < 0;
    auto over = neg & (loss > cap), tie = neg & (loss == cap);
    loss = torch::where(over, cap, loss);
    dr = torch::where(over, zero, torch::where(tie, dr / 2, dr));
  }
  auto dlw = dr * r * clamp_pass;
  auto weight = in.mask * in.seq_weight.unsqueeze(1);                                   // [B, T]
  auto on = in.mask != 0;
  auto seq_loss = torch::where(on, weight * loss.expand_as(weight), zero).sum(-1);       // [B]
  torch::Tensor grad;
  if (o.level == RatioLevel::Sequence) {
    auto g_seq = (weight * dlw.expand_as(weight)).sum(-1, true);
    grad = g_seq * in.mask / in.mask.sum(-1, true).clamp_min(1.0);
  } else {
    grad = weight * dlw;
  }
  return {seq_loss, r, grad};
}

kernels::PolicyObjectiveArgs kernel_args(const Inputs& in, const PolicyObjectiveOptions& o) {
  kernels::PolicyObjectiveArgs a;
  a.level = static_cast<int>(o.level);
  a.eps_low = o.eps_low;
  a.eps_high = o.eps_high;
  a.has_delta = o.delta.has_value();
  a.delta = o.delta.value_or(0.0);
  a.log_ratio_min = std::max(o.log_ratio_min, -1e300);
  a.log_ratio_max = std::min(o.log_ratio_max, 1e300);
  a.has_dual_clip = o.dual_clip.has_value();
  a.dual_clip = o.dual_clip.value_or(0.0);
  a.batch = in.logp.size(0);
  a.time = in.logp.size(1);
  a.adv_per_token = in.adv.size(1) != 1 || a.time == 1;
  return a;
}

TwinResult kernel(const Inputs& in, const PolicyObjectiveOptions& o) {
  const c10::DeviceGuard guard(in.logp.device());
  auto c = [](const torch::Tensor& t) { return t.detach().contiguous(); };
  const Inputs k{c(in.logp), c(in.old), c(in.adv), c(in.mask), c(in.seq_weight)};
  const auto a = kernel_args(k, o);
  auto adv = a.adv_per_token ? k.adv.expand_as(k.logp).contiguous() : k.adv;
  TwinResult r{torch::empty({a.batch}, k.logp.options()),
               o.level == RatioLevel::Sequence ? torch::empty({a.batch, 1}, k.logp.options()) : torch::empty_like(k.logp),
               torch::empty_like(k.logp)};
  detail::check_launch(kernels::launch_policy_objective(a, detail::kernel_dtype(k.logp.scalar_type()), k.logp.data_ptr(),
                                                        k.old.data_ptr(), adv.data_ptr(), k.mask.data_ptr(), k.seq_weight.data_ptr(),
                                                        r.seq_loss.data_ptr(), r.ratio.data_ptr(), r.grad.data_ptr(),
                                                        detail::cuda_stream(k.logp)));
  return r;
}

// Outputs: loss (scalar), ratio, seq_loss (both non-differentiable). Saved: ∂loss/∂logp [B, T].
struct PolicyObjectiveFunction : torch::autograd::Function<PolicyObjectiveFunction> {
  static variable_list forward(AutogradContext* ctx, torch::Tensor logp, torch::Tensor old, torch::Tensor adv, torch::Tensor mask,
                               torch::Tensor seq_weight, const PolicyObjectiveOptions& o, bool use_kernel) {
    const Inputs in{logp, old, adv, mask, seq_weight};
    auto r = use_kernel ? kernel(in, o) : twin(in, o);
    ctx->save_for_backward({r.grad});
    auto loss = r.seq_loss.sum();
    ctx->mark_non_differentiable({r.ratio, r.seq_loss});
    return {loss, r.ratio, r.seq_loss};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto grad = ctx->get_saved_variables()[0];
    auto g = grads[0].defined() ? grad * grads[0] : torch::zeros_like(grad);
    return {g, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// Validates, and brings everything to logp's compute dtype (float32 for bfloat16/float16), adv to
// [B, 1] or [B, T], mask to 0/1. Returns the cast logp (still attached to the graph).
Inputs prepare(const torch::Tensor& logp, const torch::Tensor& old, const torch::Tensor& adv, const torch::Tensor& mask,
               const torch::Tensor& seq_weight) {
  if (!logp.defined() || logp.dim() != 2) runtime_error("clipped_policy_objective: logp must be [B, T], got {}", detail::shape_text(logp));
  const auto sizes = logp.sizes();
  const int64_t b = sizes[0];
  auto same = [&](const torch::Tensor& x, const char* what) {
    if (!x.defined() || x.sizes() != sizes)
      runtime_error("clipped_policy_objective: {} is {}, expected {} like logp", what, detail::shape_text(x), detail::shape_text(logp));
    if (x.device() != logp.device())
      runtime_error("clipped_policy_objective: {} is on {}, logp on {}", what, x.device().str(), logp.device().str());
  };
  same(old, "old");
  same(mask, "mask");
  const auto s = logp.scalar_type();
  if (!logp.is_floating_point()) runtime_error("clipped_policy_objective: logp must be floating point");
  const auto acc = s == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  Inputs in;
  in.logp = logp.to(acc);
  in.old = old.detach().to(acc);
  in.mask = (mask != 0).to(acc);
  if (!adv.defined()) runtime_error("clipped_policy_objective: advantages are missing");
  if (adv.dim() == 1 && adv.size(0) == b) in.adv = adv.unsqueeze(1);
  else if (adv.dim() == 2 && adv.size(0) == b && (adv.size(1) == 1 || adv.size(1) == sizes[1])) in.adv = adv;
  else runtime_error("clipped_policy_objective: advantages are {}, expected [{}], [{}, 1] or {}", detail::shape_text(adv), b, b,
                     detail::shape_text(logp));
  in.adv = in.adv.detach().to(logp.device(), acc);
  if (!seq_weight.defined() || seq_weight.dim() != 1 || seq_weight.size(0) != b)
    runtime_error("clipped_policy_objective: seq_weight is {}, expected [{}]", detail::shape_text(seq_weight), b);
  in.seq_weight = seq_weight.detach().to(logp.device(), acc);
  return in;
}

void check_options(const PolicyObjectiveOptions& o) {
  if (o.eps_low < 0 || o.eps_high < 0) config_error("epsilon and epsilon_high must be >= 0, got {} and {}", o.eps_low, o.eps_high);
  if (o.dual_clip && !(*o.dual_clip > 1.0)) config_error("clip_ratio_c must be > 1, got {}", *o.dual_clip);
  if (!(o.log_ratio_min <= o.log_ratio_max)) runtime_error("clipped_policy_objective: log_ratio_min > log_ratio_max");
}

}  // namespace

torch::Tensor sequence_log_ratio(const torch::Tensor& logp, const torch::Tensor& old, const torch::Tensor& mask) {
  if (logp.dim() != 2 || old.sizes() != logp.sizes() || mask.sizes() != logp.sizes())
    runtime_error("sequence_log_ratio: expected logp, old, mask [B, T], got {}, {}, {}", detail::shape_text(logp),
                  detail::shape_text(old), detail::shape_text(mask));
  auto m = (mask != 0).to(logp.scalar_type());
  return ((logp - old.detach()) * m).sum(-1) / m.sum(-1).clamp_min(1.0);
}

PolicyObjective clipped_policy_objective(const torch::Tensor& logp, const torch::Tensor& old, const torch::Tensor& adv,
                                         const torch::Tensor& mask, const torch::Tensor& seq_weight, const PolicyObjectiveOptions& o) {
  check_options(o);
  const auto in = prepare(logp, old, adv, mask, seq_weight);
  auto out = PolicyObjectiveFunction::apply(in.logp, in.old, in.adv, in.mask, in.seq_weight, o, detail::use_kernel(in.logp, o.impl));
  return {out[0], out[1], out[2]};
}

PolicyObjective clipped_policy_objective_reference(const torch::Tensor& logp, const torch::Tensor& old, const torch::Tensor& adv,
                                                   const torch::Tensor& mask, const torch::Tensor& seq_weight,
                                                   const PolicyObjectiveOptions& o) {
  check_options(o);
  const auto in = prepare(logp, old, adv, mask, seq_weight);
  auto lw = torch::clamp(log_weight(in, o.level), o.log_ratio_min, o.log_ratio_max);
  auto coef_1 = torch::exp(lw);
  auto coef_2 = torch::clamp(coef_1, 1 - o.eps_low, 1 + o.eps_high);
  PolicyObjective r;
  r.ratio = coef_1.detach();
  if (o.delta) coef_1 = torch::clamp_max(coef_1, *o.delta);
  auto per_token = -torch::min(coef_1 * in.adv, coef_2 * in.adv);
  if (o.dual_clip) per_token = torch::where(in.adv < 0, torch::minimum(-in.adv * *o.dual_clip, per_token), per_token);
  auto masked = per_token.expand_as(in.mask) * in.mask * in.seq_weight.unsqueeze(1);
  auto seq_loss = masked.sum(-1);
  r.loss = seq_loss.sum();
  r.seq_loss = seq_loss.detach();
  return r;
}

torch::Tensor sequence_weights(const torch::Tensor& mask, Aggregation agg, const AggregationParams& p) {
  if (mask.dim() != 2) runtime_error("sequence_weights: mask must be [B, T], got {}", detail::shape_text(mask));
  const auto dt = mask.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  auto m = (mask != 0).to(dt);
  const int64_t b = mask.size(0), t = mask.size(1);
  auto n = m.sum(-1);                                  // [B]
  auto ones = torch::ones({b}, m.options());
  const double ga = static_cast<double>(p.grad_accum);
  if (p.grad_accum < 1) runtime_error("policy loss: grad_accum must be >= 1, got {}", p.grad_accum);
  switch (agg) {
    case Aggregation::TrlGrpo: return 1.0 / (n.clamp_min(1.0) * static_cast<double>(b) * ga);
    case Aggregation::TrlBnpo: return ones / (m.sum().clamp_min(1.0) * ga);
    case Aggregation::TrlDrGrpo:
      if (p.max_completion_length < 1) config_error("dr_grpo needs max_completion_length >= 1, got {}", p.max_completion_length);
      return ones / (static_cast<double>(b * p.max_completion_length) * ga);
    case Aggregation::TrlDapo: {
      // num_items_in_batch counts the whole generation batch of all ranks; no division by GA.
      auto items = p.num_items_in_batch > 0 ? torch::full({}, p.num_items_in_batch, m.options()) : m.sum();
      return ones / (items.clamp_min(1.0) / static_cast<double>(std::max<int64_t>(1, p.num_processes)));
    }
    case Aggregation::VerlTokenMean: return ones / m.sum().clamp_min(1.0);
    case Aggregation::VerlSeqMeanTokenSum: {
      auto nonempty = (n > 0).to(dt);
      return nonempty / nonempty.sum().clamp_min(1.0);
    }
    case Aggregation::VerlSeqMeanTokenMean: {
      auto nonempty = (n > 0).to(dt);
      return nonempty / (n + 1e-8) / nonempty.sum().clamp_min(1.0);
    }
    case Aggregation::VerlSeqMeanTokenSumNorm: return ones / static_cast<double>(t);
  }
  runtime_error("sequence_weights: unknown aggregation");
}

}  // namespace gym::ops
