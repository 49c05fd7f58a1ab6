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
  // Sampling: ops::sample_categorical (an exponential race with fast exponentials, ~10x cheaper
  // than torch::multinomial over a 32000-token vocabulary), or torch::multinomial's own stream.
  bool fast_sampler = true;
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

// G completions of each prompt (prompts[i]: [n_i] int64), decoded together: prompt i is prefilled
// once ([1, n_i]), its cache repeated on its G rows and right-aligned to the longest prompt, and
// rows i·G .. i·G + G − 1 sample from generators[i]. Output i is what generate() returns for those
// rows (sequences [G, n_i + N], no left padding). A row's tokens depend on the other prompts of
// the batch only through the kernels' rounding: none when decode_rows_are_independent(model) and
// the batch has at most ops::kSmallMRows rows (GYM's RL rollouts batch groups only then).
std::vector<GenerationOutput> generate_shared_prompts(CausalLMImpl& model, const std::vector<torch::Tensor>& prompts, int64_t g,
                                                      const SamplingConfig& cfg, const std::vector<torch::Generator>& generators,
                                                      bool keep_step_logits = false);

// True when every row of a decode step (up to ops::kSmallMRows rows) is computed by per-row CPU
// kernels whatever the other rows and their left padding: float32 CPU weights, every linear taken
// by the small-M kernel, attention layers only (the decode-attention kernel sums positions in order,
// and masked ones add exact zeros). Linear attention, bf16/NF4 bases and GPUs: false.
bool decode_rows_are_independent(CausalLMImpl& model);

// The logits processors, exposed for tests. scores: [B, V] float32.
torch::Tensor apply_repetition_penalty(torch::Tensor scores, const torch::Tensor& seen_ids, double penalty);
torch::Tensor apply_top_k(torch::Tensor scores, int64_t k);
torch::Tensor apply_top_p(torch::Tensor scores, double p);

}  // namespace gym::model
