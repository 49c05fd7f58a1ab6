#include "gym/rl/logprobs.h"

#include <torch/autograd.h>

#include <algorithm>

#include "gym/core/error.h"
#include "shape_text.h"

namespace gym::rl {

namespace {

bool is_half_type(const torch::Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf;
}

// Calls fn(b, t0, n) over row blocks of a [B, T, V] tensor: rows t0..t0+n of batch entry b. Slicing
// one batch entry at a time keeps every chunk a view, also of non-contiguous logits (e.g. [:, :-1]).
template <typename Fn>
void for_each_chunk(const torch::Tensor& logits, Fn&& fn) {
  const int64_t b_size = logits.size(0), t_size = logits.size(1), v = std::max<int64_t>(1, logits.size(2));
  const int64_t rows = std::max<int64_t>(1, kLogitsChunkElements / v);
  for (int64_t b = 0; b < b_size; ++b)
    for (int64_t t0 = 0; t0 < t_size; t0 += rows) fn(b, t0, std::min(rows, t_size - t0));
}

void check_shapes(const torch::Tensor& logits, const torch::Tensor& ids) {
  if (logits.dim() != 3 || ids.dim() != 2 || logits.size(0) != ids.size(0) || logits.size(1) != ids.size(1))
    runtime_error("selective_log_softmax: expected logits [B, T, V] and ids [B, T], got {} and {}", detail::shape_text(logits), detail::shape_text(ids));
  if (!logits.is_floating_point()) runtime_error("selective_log_softmax: logits must be floating point, got {}", std::string(logits.dtype().name()));
  if (ids.numel() > 0) {
    const auto lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= logits.size(2))
      runtime_error("selective_log_softmax: token ids must lie in [0, {}), got [{}, {}]", logits.size(2), lo, hi);
  }
}

// Forward: gather − logsumexp per chunk. Backward: d logp / d z = onehot(id) − softmax(z / T), times 1/T.
struct SelectiveLogSoftmax : torch::autograd::Function<SelectiveLogSoftmax> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor logits, torch::Tensor ids, double temperature) {
    ctx->save_for_backward({logits, ids});
    ctx->saved_data["temperature"] = temperature;
    auto out = torch::empty(ids.sizes(), logits.options());   // [B, T]
    const bool half = is_half_type(logits);
    for_each_chunk(logits, [&](int64_t b, int64_t t0, int64_t n) {
      auto z = logits[b].narrow(0, t0, n) / temperature;          // [n, V]
      auto id = ids[b].narrow(0, t0, n).unsqueeze(-1);             // [n, 1]
      auto dst = out[b].narrow(0, t0, n);
      if (half) dst.copy_(torch::log_softmax(z, -1).gather(-1, id).squeeze(-1));
      else dst.copy_(z.gather(-1, id).squeeze(-1) - torch::logsumexp(z, -1));
    });
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& logits = saved[0];
    const auto& ids = saved[1];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const auto& grad_out = grads[0];                                 // [B, T]
    auto grad = torch::empty(logits.sizes(), logits.options());      // [B, T, V]
    const auto compute = is_half_type(logits) ? torch::kFloat32 : logits.scalar_type();
    for_each_chunk(logits, [&](int64_t b, int64_t t0, int64_t n) {
      auto z = logits[b].narrow(0, t0, n).to(compute) / temperature;
      auto g = grad_out[b].narrow(0, t0, n).to(compute).unsqueeze(-1);   // [n, 1]
      auto dz = -torch::softmax(z, -1) * g;
      dz.scatter_add_(-1, ids[b].narrow(0, t0, n).unsqueeze(-1), g);
      grad[b].narrow(0, t0, n).copy_(dz / temperature);
    });
    return {grad, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor selective_log_softmax(const torch::Tensor& logits, const torch::Tensor& ids, double temperature) {
  check_shapes(logits, ids);
  if (!(temperature > 0)) runtime_error("selective_log_softmax: temperature must be > 0, got {}", temperature);
  return SelectiveLogSoftmax::apply(logits, ids.to(torch::kInt64), temperature);
}

torch::Tensor entropy_from_logits(const torch::Tensor& logits, double temperature) {
  if (logits.dim() != 3) runtime_error("entropy_from_logits: expected logits [B, T, V], got {}", detail::shape_text(logits));
  torch::NoGradGuard no_grad;
  const auto compute = is_half_type(logits) ? torch::kFloat32 : logits.scalar_type();
  auto out = torch::empty({logits.size(0), logits.size(1)}, logits.options().dtype(compute));   // [B, T]
  for_each_chunk(logits, [&](int64_t b, int64_t t0, int64_t n) {
    auto logp = torch::log_softmax(logits[b].narrow(0, t0, n).to(compute) / temperature, -1);
    out[b].narrow(0, t0, n).copy_(-(logp.exp() * logp).sum(-1));
  });
  return out;
}

}  // namespace gym::rl
