// Batched generation with the KV cache (left-padded prompts), greedy or sampled.
#pragma once
#include <optional>
#include <vector>

#include "gym/model/causal_lm.h"

namespace gym::model {

struct SamplingConfig {
  int64_t max_new_tokens = 32;
  bool do_sample = false;          // false: greedy (temperature/top-k/top-p ignored)
  double temperature = 1.0;
  int64_t top_k = 0;               // 0 = off
  double top_p = 1.0;              // 1 = off
  double repetition_penalty = 1.0; // 1 = off; HF semantics over prompt + generated tokens
  std::vector<int64_t> stop_ids;   // eos / <|im_end|>
  int64_t pad_id = 0;              // written after a sequence stopped
  // Sample with W + B·A·s merged (float32 LoRA layers; rounding only): one GEMM instead of three in
  // the prefill, for a float32 copy of every adapted weight. Off: decoding applies the adapter inside
  // the small-M kernel's pass over W (ops::small_m_linear_lora): ~4 % slower, no copy (docs/performance.md).
  bool merge_lora = false;
};

struct GenerationOutput {
  torch::Tensor sequences;         // [B, P + N] prompt (as given) + completion
  torch::Tensor completion_ids;    // [B, N] pad after the stop token
  torch::Tensor completion_mask;   // [B, N] 1 up to and including the stop token
  torch::Tensor truncated;         // [B] bool: no stop token within max_new_tokens
  std::vector<torch::Tensor> step_logits;   // [B, V] per step, when requested (raw, before processing)
};

// prompt_ids: [B, P] left-padded; prompt_mask: [B, P] (1 = token). `generator` seeds sampling.
GenerationOutput generate(CausalLMImpl& model, const torch::Tensor& prompt_ids, const torch::Tensor& prompt_mask,
                          const SamplingConfig& cfg, std::optional<torch::Generator> generator = std::nullopt,
                          bool keep_step_logits = false);

// The logits processors, exposed for tests. scores: [B, V] float32.
torch::Tensor apply_repetition_penalty(torch::Tensor scores, const torch::Tensor& seen_ids, double penalty);
torch::Tensor apply_top_k(torch::Tensor scores, int64_t k);
torch::Tensor apply_top_p(torch::Tensor scores, double p);

}  // namespace gym::model
