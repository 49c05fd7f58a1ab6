// TRL's per-token log-probs and entropies through the ops layer's selective log-softmax (one
// implementation: CPU twin on CPU, the fused kernel on CUDA).
#include "gym/rl/logprobs.h"

#include "gym/core/error.h"
#include "gym/ops/selective_log_softmax.h"
#include "shape_text.h"

namespace gym::rl {

torch::Tensor selective_log_softmax(const torch::Tensor& logits, const torch::Tensor& ids, double temperature) {
  if (logits.dim() != 3 || ids.dim() != 2)
    runtime_error("selective_log_softmax: expected logits [B, T, V] and ids [B, T], got {} and {}", detail::shape_text(logits),
                  detail::shape_text(ids));
  auto logp = ops::selective_log_softmax(logits, ids, temperature).logp;   // float32 math for bfloat16/half
  return logp.scalar_type() == logits.scalar_type() ? logp : logp.to(logits.scalar_type());
}

torch::Tensor entropy_from_logits(const torch::Tensor& logits, double temperature) {
  if (logits.dim() != 3) runtime_error("entropy_from_logits: expected logits [B, T, V], got {}", detail::shape_text(logits));
  torch::NoGradGuard no_grad;
  auto ids = torch::zeros({logits.size(0), logits.size(1)}, logits.options().dtype(torch::kInt64));
  return ops::selective_log_softmax(logits, ids, temperature, /*with_entropy=*/true).entropy;
}

}  // namespace gym::rl
