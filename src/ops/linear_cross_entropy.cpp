// The chunked LM head + cross-entropy (include/gym/ops/linear_cross_entropy.h).
#include "gym/ops/linear_cross_entropy.h"

#include <torch/autograd.h>
#include <torch/nn/functional/linear.h>
#include <torch/nn/functional/loss.h>

#include <algorithm>

#include "gym/core/error.h"
#include "ops/log_softmax_rows.h"

namespace gym::ops {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per chunk: 16 Mi logits (64 MiB of float32), at least 16 rows. Each chunk re-packs W in both
// GEMMs: 4 Mi-logit chunks were 3-5 % slower on the SFT bench.
constexpr int64_t kChunkElements = int64_t{1} << 24;

struct LinearCrossEntropy : torch::autograd::Function<LinearCrossEntropy> {
  // h [K, H], w [V, H], targets [K] → Σ CE; dh [K, H] saved when want_grad.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& targets,
                               bool want_grad) {
    const int64_t k = h.size(0), v = w.size(0);
    const int64_t rows = std::max<int64_t>(16, kChunkElements / std::max<int64_t>(1, v));
    auto loss = torch::zeros({}, h.options().dtype(torch::kFloat32));
    torch::Tensor dh = want_grad ? torch::empty_like(h, torch::MemoryFormat::Contiguous) : torch::Tensor();
    for (int64_t r0 = 0; r0 < k; r0 += rows) {
      const int64_t n = std::min(rows, k - r0);
      auto t = targets.narrow(0, r0, n).unsqueeze(1);                                // [n, 1]
      auto logits = torch::nn::functional::linear(h.narrow(0, r0, n), w).to(torch::kFloat32);   // [n, V]
      torch::Tensor g;                                                               // ∂CE/∂logits = softmax − onehot
      if (log_softmax_rows_apply(logits.unsqueeze(0))) {
        // the fused rows: each row read twice for its log-sum-exp, once more to turn it into its gradient in place
        auto rows3 = logits.unsqueeze(0);                                            // [1, n, V]
        auto ids = t.view({1, n}).contiguous(), lse = torch::empty({1, n}, logits.options()), logp = torch::empty({1, n}, logits.options());
        log_softmax_rows_forward(rows3, ids, 1.0, logp, lse);
        loss -= logp.sum();
        if (want_grad) g = log_softmax_rows_backward(rows3, ids, 1.0, lse, torch::full({1, n}, -1.0f, logits.options()), rows3).view({n, -1});
      } else {
        auto lp = torch::log_softmax(logits, -1);                                    // [n, V]
        loss -= lp.gather(1, t).sum();
        if (want_grad) {
          g = lp.exp_();                                                              // softmax
          g.scatter_add_(1, t, torch::full({n, 1}, -1.0f, g.options()));             // − onehot
        }
      }
      if (want_grad) {
        auto part = dh.narrow(0, r0, n);                                              // [n, H], contiguous rows
        torch::mm_out(part, g.to(w.scalar_type()), w);
      }
    }
    if (want_grad) ctx->save_for_backward({dh});
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto dh = ctx->get_saved_variables()[0];
    return {dh * grad_out[0].to(dh.scalar_type()), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor linear_cross_entropy(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& targets) {
  if (h.dim() != 2 || w.dim() != 2 || h.size(1) != w.size(1) || targets.dim() != 1 || targets.size(0) != h.size(0))
    runtime_error("linear_cross_entropy: h {} · w {}ᵀ against targets {}", c10::str(h.sizes()), c10::str(w.sizes()), c10::str(targets.sizes()));
  if (w.requires_grad() && torch::GradMode::is_enabled()) runtime_error("linear_cross_entropy: the head weight must be frozen");
  const bool want_grad = torch::GradMode::is_enabled() && h.requires_grad();
  return LinearCrossEntropy::apply(h, w, targets.to(torch::kInt64), want_grad);
}

torch::Tensor linear_cross_entropy_reference(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& targets) {
  return torch::nn::functional::cross_entropy(torch::nn::functional::linear(h, w).to(torch::kFloat32), targets,
                                              torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

}  // namespace gym::ops
