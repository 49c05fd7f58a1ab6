// Selective log-softmax: the autograd function (dispatching to the CUDA kernel, the fused CPU rows of
// ops/log_softmax_rows.cpp or the CPU twin), the twin and the reference.
#include "gym/ops/selective_log_softmax.h"

#include <c10/core/DeviceGuard.h>
#include <torch/autograd.h>

#include <algorithm>

#include "gym/core/error.h"
#include "ops/device.h"
#include "ops/log_softmax_rows.h"

namespace gym::ops {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// How many logits (rows × V) one twin chunk holds: 4 Mi elements = 16 MiB of float32.
constexpr int64_t kChunkElements = int64_t{1} << 22;

torch::ScalarType compute_type(const torch::Tensor& logits) {
  return logits.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// Calls fn(b, t0, n) over row blocks of a [B, T, V] tensor; slicing one batch entry at a time keeps
// every chunk a view, also of non-contiguous logits (e.g. [:, :-1]).
template <typename Fn>
void for_each_chunk(const torch::Tensor& logits, Fn&& fn) {
  const int64_t b_size = logits.size(0), t_size = logits.size(1), v = std::max<int64_t>(1, logits.size(2));
  const int64_t rows = std::max<int64_t>(1, kChunkElements / v);
  for (int64_t b = 0; b < b_size; ++b)
    for (int64_t t0 = 0; t0 < t_size; t0 += rows) fn(b, t0, std::min(rows, t_size - t0));
}

// ---- CPU twin (LibTorch ops on any device), chunk by chunk. logits [B, T, V], ids [B, T] int64.
// Fills logp, lse and (when defined) entropy: [B, T] in the compute type.
void twin_forward(const torch::Tensor& logits, const torch::Tensor& ids, double temperature, torch::Tensor& logp,
                  torch::Tensor& lse, torch::Tensor& entropy) {
  const auto acc = compute_type(logits);
  for_each_chunk(logits, [&](int64_t b, int64_t t0, int64_t n) {
    auto z = logits[b].narrow(0, t0, n).to(acc) / temperature;   // [n, V]
    auto l = torch::logsumexp(z, -1);                             // [n]
    lse[b].narrow(0, t0, n).copy_(l);
    logp[b].narrow(0, t0, n).copy_(z.gather(-1, ids[b].narrow(0, t0, n).unsqueeze(-1)).squeeze(-1) - l);
    if (entropy.defined()) {
      auto lp = z - l.unsqueeze(-1), p = lp.exp();
      // a −inf logit (masked-out token) contributes 0, not 0·(−inf)
      entropy[b].narrow(0, t0, n).copy_(-torch::where(p > 0, p * lp, torch::zeros_like(p)).sum(-1));
    }
  });
}

// grad [B, T, V] in the logits' dtype; g_entropy and entropy may be undefined.
torch::Tensor twin_backward(const torch::Tensor& logits, const torch::Tensor& ids, double temperature, const torch::Tensor& lse,
                            const torch::Tensor& entropy, const torch::Tensor& g_logp, const torch::Tensor& g_entropy) {
  const auto acc = compute_type(logits);
  auto grad = torch::empty(logits.sizes(), logits.options().memory_format(c10::MemoryFormat::Contiguous));
  for_each_chunk(logits, [&](int64_t b, int64_t t0, int64_t n) {
    auto lp = logits[b].narrow(0, t0, n).to(acc) / temperature - lse[b].narrow(0, t0, n).unsqueeze(-1);   // [n, V]
    auto p = lp.exp();
    auto gl = g_logp[b].narrow(0, t0, n).to(acc).unsqueeze(-1);                                          // [n, 1]
    auto dz = -p * gl;
    dz.scatter_add_(-1, ids[b].narrow(0, t0, n).unsqueeze(-1), gl);
    if (g_entropy.defined()) {
      auto gh = g_entropy[b].narrow(0, t0, n).to(acc).unsqueeze(-1);
      auto h = entropy[b].narrow(0, t0, n).unsqueeze(-1);
      dz -= gh * torch::where(p > 0, p * (lp + h), torch::zeros_like(p));
    }
    grad[b].narrow(0, t0, n).copy_(dz / temperature);
  });
  return grad;
}

kernels::LogitsView view_of(const torch::Tensor& logits) {
  kernels::LogitsView v;
  v.data = logits.data_ptr();
  v.dtype = detail::kernel_dtype(logits.scalar_type());
  v.rows = logits.size(0) * logits.size(1);
  v.rows_per_batch = std::max<int64_t>(1, logits.size(1));
  v.vocab = logits.size(2);
  v.stride_batch = logits.stride(0);
  v.stride_row = logits.stride(1);
  return v;
}

// Outputs: logp [B, T], entropy [B, T] (or [0] when not asked). Saved: logits, ids, lse, entropy.
struct SelectiveLogSoftmaxFunction : torch::autograd::Function<SelectiveLogSoftmaxFunction> {
  // path: the CUDA kernel, the fused CPU rows (float32, logp only) or the twin.
  enum Path : int64_t { kTwin = 0, kCuda = 1, kCpuRows = 2 };
  static variable_list forward(AutogradContext* ctx, torch::Tensor logits, torch::Tensor ids, double temperature,
                               bool with_entropy, int64_t path) {
    const auto opts = logits.options().dtype(compute_type(logits));
    auto logp = torch::empty(ids.sizes(), opts), lse = torch::empty(ids.sizes(), opts);
    auto entropy = with_entropy ? torch::empty(ids.sizes(), opts) : torch::Tensor();
    if (path == kCuda) {
      const c10::DeviceGuard guard(logits.device());
      if (logits.stride(2) != 1) logits = logits.contiguous();
      detail::check_launch(kernels::launch_selective_log_softmax_forward(
          view_of(logits), ids.data_ptr<int64_t>(), temperature, logp.data_ptr(), lse.data_ptr(),
          with_entropy ? entropy.data_ptr() : nullptr, detail::cuda_stream(logits)));
    } else if (path == kCpuRows) {
      log_softmax_rows_forward(logits, ids, temperature, logp, lse);
    } else {
      twin_forward(logits, ids, temperature, logp, lse, entropy);
    }
    if (!with_entropy) entropy = torch::empty({0}, opts);
    ctx->save_for_backward({logits, ids, lse, entropy});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["with_entropy"] = with_entropy;
    ctx->saved_data["path"] = path;
    if (!with_entropy) ctx->mark_non_differentiable({entropy});
    return {logp, entropy};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &logits = saved[0], &ids = saved[1], &lse = saved[2], &entropy = saved[3];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const bool with_entropy = ctx->saved_data["with_entropy"].toBool();
    auto g_logp = grads[0].defined() ? grads[0].contiguous() : torch::zeros_like(lse);
    auto g_entropy = with_entropy && grads[1].defined() ? grads[1].contiguous() : torch::Tensor();
    const torch::Tensor h = g_entropy.defined() ? entropy : torch::Tensor();
    torch::Tensor grad;
    const int64_t path = ctx->saved_data["path"].toInt();
    if (path == kCuda) {
      const c10::DeviceGuard guard(logits.device());
      grad = torch::empty(logits.sizes(), logits.options().memory_format(c10::MemoryFormat::Contiguous));
      detail::check_launch(kernels::launch_selective_log_softmax_backward(
          view_of(logits), ids.data_ptr<int64_t>(), temperature, lse.data_ptr(), h.defined() ? h.data_ptr() : nullptr,
          g_logp.data_ptr(), g_entropy.defined() ? g_entropy.data_ptr() : nullptr, grad.data_ptr(),
          detail::kernel_dtype(grad.scalar_type()), detail::cuda_stream(logits)));
    } else if (path == kCpuRows) {
      grad = log_softmax_rows_backward(logits, ids, temperature, lse, g_logp);
    } else {
      grad = twin_backward(logits, ids, temperature, lse, h, g_logp, g_entropy);
    }
    return {grad, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// Validates and brings logits/ids to [B, T, V] / [B, T] int64. Returns false for [N, V] input.
bool normalise(torch::Tensor& logits, torch::Tensor& ids, double temperature) {
  const bool flat = logits.dim() == 2;
  if (!((logits.dim() == 3 && ids.dim() == 2) || (flat && ids.dim() == 1)) || logits.size(0) != ids.size(0) ||
      (!flat && logits.size(1) != ids.size(1)))
    runtime_error("selective_log_softmax: expected logits [B, T, V] with ids [B, T] (or [N, V] with [N]), got {} and {}",
                  detail::shape_text(logits), detail::shape_text(ids));
  const auto s = logits.scalar_type();
  if (s != torch::kFloat32 && s != torch::kFloat64 && s != torch::kBFloat16 && s != torch::kFloat16)
    runtime_error("selective_log_softmax: logits must be float32, float64, bfloat16 or float16, got {}", std::string(c10::toString(s)));
  if (!(temperature > 0)) runtime_error("selective_log_softmax: temperature must be > 0, got {}", temperature);
  if (ids.device() != logits.device())
    runtime_error("selective_log_softmax: ids are on {}, logits on {}", ids.device().str(), logits.device().str());
  if (ids.numel() > 0 && !ids.is_meta()) {
    const auto lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= logits.size(-1))
      runtime_error("selective_log_softmax: token ids must lie in [0, {}), got [{}, {}]", logits.size(-1), lo, hi);
  }
  ids = ids.to(torch::kInt64).contiguous();
  if (flat) {
    logits = logits.unsqueeze(0);
    ids = ids.unsqueeze(0);
  }
  return !flat;
}

}  // namespace

TokenLogprobs selective_log_softmax(const torch::Tensor& logits_in, const torch::Tensor& ids_in, double temperature,
                                    bool with_entropy, Impl impl) {
  auto logits = logits_in;
  auto ids = ids_in;
  const bool batched = normalise(logits, ids, temperature);
  using F = SelectiveLogSoftmaxFunction;
  const int64_t path = detail::use_kernel(logits, impl)                                       ? F::kCuda
                       : impl == Impl::Auto && !with_entropy && log_softmax_rows_apply(logits) ? F::kCpuRows
                                                                                               : F::kTwin;
  auto out = F::apply(logits, ids, temperature, with_entropy, path);
  TokenLogprobs r{batched ? out[0] : out[0].squeeze(0), torch::Tensor()};
  if (with_entropy) r.entropy = batched ? out[1] : out[1].squeeze(0);
  return r;
}

TokenLogprobs selective_log_softmax_reference(const torch::Tensor& logits_in, const torch::Tensor& ids_in, double temperature,
                                              bool with_entropy) {
  auto logits = logits_in;
  auto ids = ids_in;
  const bool batched = normalise(logits, ids, temperature);
  auto lp = torch::log_softmax(logits.to(torch::kFloat64) / temperature, -1);   // [B, T, V]
  TokenLogprobs r{lp.gather(-1, ids.unsqueeze(-1)).squeeze(-1), torch::Tensor()};
  if (with_entropy) r.entropy = -(lp.exp() * lp).sum(-1);
  if (!batched) {
    r.logp = r.logp.squeeze(0);
    if (with_entropy) r.entropy = r.entropy.squeeze(0);
  }
  return r;
}

}  // namespace gym::ops
