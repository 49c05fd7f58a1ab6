#include "gym/model/generate.h"

#include <limits>

#include "gym/core/profile.h"
#include "gym/nn/linear.h"

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
  nn::ScopedLoraMerge merged(model, cfg.merge_lora);   // the adapter is frozen while sampling
  const int64_t b = prompt_ids.size(0), p = prompt_ids.size(1), n = cfg.max_new_tokens;
  auto cache = model.new_cache(p + n);
  const auto i64 = prompt_ids.options().dtype(torch::kInt64);   // every tensor on the prompt's device
  // The attention mask and the seen tokens grow in place: views of [B, P + N] buffers.
  auto full_mask = torch::ones({b, p + n}, i64);
  full_mask.narrow(1, 0, p).copy_(prompt_mask);
  const bool penalize = cfg.repetition_penalty != 1.0;
  torch::Tensor seen_buf = penalize ? torch::empty({b, p + n}, i64) : torch::Tensor();   // for the repetition penalty
  if (penalize) seen_buf.narrow(1, 0, p).copy_(prompt_ids);
  auto completion = torch::full({b, n}, cfg.pad_id, i64);
  auto completion_mask = torch::zeros({b, n}, i64);
  auto finished = torch::zeros({b}, i64.dtype(torch::kBool));
  auto stop_ids = torch::tensor(cfg.stop_ids.empty() ? std::vector<int64_t>{-1} : cfg.stop_ids, torch::kInt64).to(prompt_ids.device());
  GenerationOutput out;

  ForwardOptions fo;
  fo.cache = &cache;
  fo.attention_mask = full_mask.narrow(1, 0, p).contiguous();
  // Prefill: logits of the last prompt position only (the others are never used).
  auto logits = model.lm_logits(model.hidden_states(prompt_ids, fo).hidden.narrow(1, p - 1, 1)).select(1, 0);   // [B, V]
  for (int64_t t = 0; t < n; ++t) {
    torch::Tensor next;
    {
      GYM_PROFILE("softmax/sampling");
      auto scores = logits.to(torch::kFloat32);
      if (keep_step_logits) out.step_logits.push_back(scores.clone());
      if (penalize) scores = apply_repetition_penalty(scores, seen_buf.narrow(1, 0, p + t), cfg.repetition_penalty);
      if (cfg.do_sample) {
        if (cfg.temperature != 1.0) scores = scores / cfg.temperature;
        scores = apply_top_p(apply_top_k(scores, cfg.top_k), cfg.top_p);
        // torch::multinomial, not a one-uniform inverse CDF: the CDF moves with rounding differences
        // summed over the vocabulary, and 1- vs 2-process RL runs then stop drawing the same tokens
        // (DistRl.GrpoAndGspoOnTwoProcessesEqualOne).
        auto probs = scores.softmax(-1);
        next = generator ? torch::multinomial(probs, 1, false, *generator).squeeze(1) : torch::multinomial(probs, 1, false).squeeze(1);
      } else {
        next = scores.argmax(-1);
      }
    }
    {
      GYM_PROFILE("cache");
      next = torch::where(finished, torch::full_like(next, cfg.pad_id), next);
      completion.select(1, t).copy_(next);
      completion_mask.select(1, t).copy_((~finished).to(torch::kInt64));
      finished = finished | torch::isin(next, stop_ids);
      if (penalize) seen_buf.select(1, p + t).copy_(next);
      if (t + 1 == n || finished.all().item<bool>()) break;
      fo.attention_mask = full_mask.narrow(1, 0, p + t + 1).contiguous();
    }
    // Finished rows keep decoding a placeholder (their output is masked); keep it a valid id.
    logits = model.forward(next.clamp(0, model.config().vocab_size - 1).unsqueeze(1), fo).select(1, 0);
  }
  out.completion_ids = completion;
  out.completion_mask = completion_mask;
  out.truncated = ~finished;
  out.sequences = torch::cat({prompt_ids, completion}, 1);
  return out;
}

}  // namespace gym::model
