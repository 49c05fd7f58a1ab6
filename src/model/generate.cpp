#include "gym/model/generate.h"

#include <limits>

namespace gym::model {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
}

torch::Tensor apply_repetition_penalty(torch::Tensor scores, const torch::Tensor& seen_ids, double penalty) {
  if (penalty == 1.0) return scores;
  auto picked = scores.gather(1, seen_ids);
  picked = torch::where(picked < 0, picked * penalty, picked / penalty);
  return scores.scatter(1, seen_ids, picked);
}

torch::Tensor apply_top_k(torch::Tensor scores, int64_t k) {
  if (k <= 0 || k >= scores.size(-1)) return scores;
  auto kth = std::get<0>(scores.topk(k, -1)).narrow(-1, k - 1, 1);
  return scores.masked_fill(scores < kth, kNegInf);
}

torch::Tensor apply_top_p(torch::Tensor scores, double p) {
  if (p >= 1.0) return scores;
  auto [sorted, order] = scores.sort(-1, /*descending=*/false);
  auto cum = sorted.softmax(-1).cumsum(-1);
  auto remove_sorted = cum <= (1.0 - p);
  remove_sorted.narrow(-1, remove_sorted.size(-1) - 1, 1).fill_(false);   // keep at least one token
  auto remove = remove_sorted.scatter(1, order, remove_sorted);
  return scores.masked_fill(remove, kNegInf);
}

GenerationOutput generate(CausalLMImpl& model, const torch::Tensor& prompt_ids, const torch::Tensor& prompt_mask,
                          const SamplingConfig& cfg, std::optional<torch::Generator> generator, bool keep_step_logits) {
  torch::NoGradGuard no_grad;
  const int64_t b = prompt_ids.size(0), p = prompt_ids.size(1), n = cfg.max_new_tokens;
  auto cache = model.new_cache(p + n);
  auto mask = prompt_mask.to(torch::kInt64);
  auto seen = prompt_ids.clone();   // for the repetition penalty
  const auto i64 = prompt_ids.options().dtype(torch::kInt64);   // every tensor on the prompt's device
  auto completion = torch::full({b, n}, cfg.pad_id, i64);
  auto completion_mask = torch::zeros({b, n}, i64);
  auto finished = torch::zeros({b}, i64.dtype(torch::kBool));
  auto stop_ids = torch::tensor(cfg.stop_ids.empty() ? std::vector<int64_t>{-1} : cfg.stop_ids, torch::kInt64).to(prompt_ids.device());
  GenerationOutput out;

  ForwardOptions fo;
  fo.cache = &cache;
  fo.attention_mask = mask;
  auto logits = model.forward(prompt_ids, fo).select(1, p - 1);   // [B, V]
  int64_t steps = 0;
  for (int64_t t = 0; t < n; ++t) {
    auto scores = logits.to(torch::kFloat32);
    if (keep_step_logits) out.step_logits.push_back(scores.clone());
    scores = apply_repetition_penalty(scores, seen, cfg.repetition_penalty);
    torch::Tensor next;
    if (cfg.do_sample) {
      scores = scores / cfg.temperature;
      scores = apply_top_p(apply_top_k(scores, cfg.top_k), cfg.top_p);
      auto probs = scores.softmax(-1);
      next = generator ? torch::multinomial(probs, 1, false, *generator).squeeze(1)
                       : torch::multinomial(probs, 1, false).squeeze(1);
    } else {
      next = scores.argmax(-1);
    }
    next = torch::where(finished, torch::full_like(next, cfg.pad_id), next);
    completion.select(1, t).copy_(next);
    completion_mask.select(1, t).copy_((~finished).to(torch::kInt64));
    finished = finished | torch::isin(next, stop_ids);
    seen = torch::cat({seen, next.unsqueeze(1)}, 1);
    ++steps;
    if (finished.all().item<bool>() || t + 1 == n) break;
    mask = torch::cat({mask, torch::ones({b, 1}, i64)}, 1);
    fo.attention_mask = mask;
    // Finished rows keep decoding a placeholder (their output is masked); keep it a valid id.
    logits = model.forward(next.clamp(0, model.config().vocab_size - 1).unsqueeze(1), fo).select(1, 0);
  }
  (void)steps;
  out.completion_ids = completion;
  out.completion_mask = completion_mask;
  out.truncated = ~finished;
  out.sequences = torch::cat({prompt_ids, completion}, 1);
  return out;
}

}  // namespace gym::model
