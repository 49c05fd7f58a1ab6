#include "gym/model/generate.h"

#include <limits>

#include "gym/core/profile.h"
#include "gym/nn/linear.h"
#include "gym/ops/sample.h"
#include "gym/ops/ops.h"

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

namespace {

// Rows [row, row + rows) draw from `generator` (the default CPU generator when unset).
struct SampleSlice {
  int64_t row = 0, rows = 0;
  std::optional<torch::Generator> generator;
};

// The decoding loop of generate() and generate_shared_prompts(): from a prefilled cache, the prompt
// [B, P] and its mask, and the logits of the last prompt position [B, V].
GenerationOutput decode(CausalLMImpl& model, nn::Cache& cache, const torch::Tensor& prompt_ids, const torch::Tensor& prompt_mask,
                        torch::Tensor logits, const SamplingConfig& cfg, const std::vector<SampleSlice>& slices, bool keep_step_logits) {
  const int64_t b = prompt_ids.size(0), p = prompt_ids.size(1), n = cfg.max_new_tokens;
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
        // An exponential race (as torch::multinomial), not a one-uniform inverse CDF: the CDF moves
        // with rounding differences summed over the vocabulary, and 1- vs 2-process RL runs then stop
        // drawing the same tokens (DistRl.GrpoAndGspoOnTwoProcessesEqualOne).
        auto probs = scores.softmax(-1);
        auto draw = [&](const torch::Tensor& pr, const std::optional<torch::Generator>& gen) {
          // (without a generator only on the CPU: elsewhere torch::multinomial takes the device's default)
          if (cfg.fast_sampler && (gen || pr.device().is_cpu()))
            return ops::sample_categorical(pr, gen.value_or(at::detail::getDefaultCPUGenerator()));
          return (gen ? torch::multinomial(pr, 1, false, *gen) : torch::multinomial(pr, 1, false)).squeeze(1);
        };
        next = torch::empty({b}, i64);
        for (const auto& sl : slices) next.narrow(0, sl.row, sl.rows).copy_(draw(probs.narrow(0, sl.row, sl.rows), sl.generator));
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

// A batch cache of B = Σ rows_i rows and `capacity` positions from each prompt's own prefilled
// cache (one row, n_i positions): prompt i's state repeated on its rows, its keys and values
// right-aligned at positions P − n_i .. P − 1 (zeros before: those positions are masked).
nn::Cache place_prefilled(const std::vector<nn::Cache>& caches, const std::vector<int64_t>& lengths, int64_t rows_each, int64_t p,
                          int64_t capacity) {
  nn::Cache out;
  out.layers.resize(caches.front().layers.size());
  out.length = p;
  out.capacity = capacity;
  const int64_t b = rows_each * static_cast<int64_t>(caches.size());
  for (size_t l = 0; l < out.layers.size(); ++l) {
    auto& dst = out.layers[l];
    const auto& first = caches.front().layers[l];
    if (first.k.defined()) {
      auto shape = first.k.sizes().vec();   // [1, nkv, cap_i, D]
      shape[0] = b, shape[2] = capacity;
      dst.k = torch::zeros(shape, first.k.options());
      dst.v = torch::zeros(shape, first.v.options());
    }
    std::vector<torch::Tensor> conv, state;
    for (size_t i = 0; i < caches.size(); ++i) {
      const auto& src = caches[i].layers[l];
      const int64_t n = lengths[i], row = static_cast<int64_t>(i) * rows_each;
      if (src.k.defined()) {
        dst.k.narrow(0, row, rows_each).narrow(2, p - n, n).copy_(src.k.narrow(2, 0, n).expand({rows_each, -1, -1, -1}));
        dst.v.narrow(0, row, rows_each).narrow(2, p - n, n).copy_(src.v.narrow(2, 0, n).expand({rows_each, -1, -1, -1}));
      }
      if (src.conv_state.defined()) conv.push_back(src.conv_state.expand({rows_each, -1, -1}));
      if (src.recurrent_state.defined()) state.push_back(src.recurrent_state.expand({rows_each, -1, -1, -1}));
    }
    if (!conv.empty()) dst.conv_state = torch::cat(conv, 0);
    if (!state.empty()) dst.recurrent_state = torch::cat(state, 0);
  }
  return out;
}

}  // namespace

GenerationOutput generate(CausalLMImpl& model, const torch::Tensor& prompt_ids, const torch::Tensor& prompt_mask,
                          const SamplingConfig& cfg, std::optional<torch::Generator> generator, bool keep_step_logits) {
  torch::NoGradGuard no_grad;
  nn::ScopedLoraMerge merged(model, cfg.merge_lora);   // the adapter is frozen while sampling
  const int64_t b = prompt_ids.size(0), p = prompt_ids.size(1);
  auto cache = model.new_cache(p + cfg.max_new_tokens);
  ForwardOptions fo;
  fo.cache = &cache;
  fo.attention_mask = prompt_mask.to(torch::kInt64).contiguous();
  // Prefill: logits of the last prompt position only (the others are never used).
  auto logits = model.lm_logits(model.hidden_states(prompt_ids, fo).hidden.narrow(1, p - 1, 1)).select(1, 0);   // [B, V]
  return decode(model, cache, prompt_ids, prompt_mask, logits, cfg, {{0, b, generator}}, keep_step_logits);
}

std::vector<GenerationOutput> generate_shared_prompts(CausalLMImpl& model, const std::vector<torch::Tensor>& prompts, int64_t g,
                                                      const SamplingConfig& cfg, const std::vector<torch::Generator>& generators,
                                                      bool keep_step_logits) {
  torch::NoGradGuard no_grad;
  nn::ScopedLoraMerge merged(model, cfg.merge_lora);
  std::vector<nn::Cache> caches;
  std::vector<int64_t> lengths;
  std::vector<torch::Tensor> first_logits;
  int64_t p = 1;
  for (const auto& ids : prompts) {   // [n_i]
    const int64_t n = ids.size(0);
    caches.push_back(model.new_cache(n));
    ForwardOptions fo;
    fo.cache = &caches.back();
    fo.attention_mask = torch::ones({1, n}, ids.options().dtype(torch::kInt64));
    first_logits.push_back(model.lm_logits(model.hidden_states(ids.unsqueeze(0), fo).hidden.narrow(1, n - 1, 1)).select(1, 0).expand({g, -1}));
    lengths.push_back(n);
    p = std::max(p, n);
  }
  const int64_t groups = static_cast<int64_t>(prompts.size());
  auto cache = place_prefilled(caches, lengths, g, p, p + cfg.max_new_tokens);
  caches.clear();
  const auto i64 = prompts.front().options().dtype(torch::kInt64);
  auto prompt_ids = torch::full({groups * g, p}, cfg.pad_id, i64), prompt_mask = torch::zeros({groups * g, p}, i64);
  std::vector<SampleSlice> slices;
  for (int64_t i = 0; i < groups; ++i) {
    const int64_t n = lengths[static_cast<size_t>(i)];
    prompt_ids.narrow(0, i * g, g).narrow(1, p - n, n).copy_(prompts[static_cast<size_t>(i)].unsqueeze(0).expand({g, n}));
    prompt_mask.narrow(0, i * g, g).narrow(1, p - n, n).fill_(1);
    slices.push_back({i * g, g, generators[static_cast<size_t>(i)]});
  }
  auto all = decode(model, cache, prompt_ids, prompt_mask, torch::cat(first_logits, 0), cfg, slices, keep_step_logits);
  std::vector<GenerationOutput> out(static_cast<size_t>(groups));
  for (int64_t i = 0; i < groups; ++i) {
    auto& o = out[static_cast<size_t>(i)];
    const int64_t n = lengths[static_cast<size_t>(i)];
    o.completion_ids = all.completion_ids.narrow(0, i * g, g);
    o.completion_mask = all.completion_mask.narrow(0, i * g, g);
    o.truncated = all.truncated.narrow(0, i * g, g);
    o.sequences = torch::cat({prompt_ids.narrow(0, i * g, g).narrow(1, p - n, n), o.completion_ids}, 1);
    for (const auto& l : all.step_logits) o.step_logits.push_back(l.narrow(0, i * g, g));
  }
  return out;
}

bool decode_rows_are_independent(CausalLMImpl& model) {
  if (!ops::cpu_has_avx2_fma()) return false;   // the small-M and decode-attention kernels
  const auto& c = model.config();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    if (c.is_linear_attention(l)) return false;
  for (const auto& p : model.parameters())
    if (p.is_floating_point() && (p.scalar_type() != torch::kFloat32 || !p.device().is_cpu())) return false;
  for (const auto& m : model.modules(/*include_self=*/false))
    if (const auto* lin = dynamic_cast<const nn::LinearImpl*>(m.get()); lin && lin->quantized_base()) return false;
  return true;
}

}  // namespace gym::model
