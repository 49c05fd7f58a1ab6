// The one causal-LM interface every model family implements: hidden states (with router logits
// for MoE), logits, a per-layer cache. score, generate, export, the recipes and the benches use
// only this; a family is built through the registry in gym/model/family.h.
#pragma once
#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <vector>

#include "gym/model/config.h"
#include "gym/nn/cache.h"

namespace gym::model {

struct ForwardOptions {
  torch::Tensor attention_mask;   // [B, S] 1 = keep (S = cached + new); undefined = all ones
  torch::Tensor position_ids;     // [B, T]; default clamp(cumsum(mask) − 1, 0) of the new tokens
  nn::Cache* cache = nullptr;     // continued and updated, when given
  bool output_router_logits = false;    // MoE: fill ModelOutput::router_logits
  bool gradient_checkpointing = false;  // recompute each layer in backward (training, no cache)
};

struct ModelOutput {
  torch::Tensor hidden;                      // [B, T, H] after the final norm
  std::vector<torch::Tensor> router_logits;  // one [B*T, E] per sparse-MoE layer, when requested
};

class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(ArchConfig c) : config_(std::move(c)) {}
  ~CausalLMImpl() override = default;

  // input_ids: [B, T] → final hidden states and, on request, the MoE router logits
  virtual ModelOutput hidden_states(const torch::Tensor& input_ids, const ForwardOptions& opts = {}) = 0;
  // hidden: [..., H] → logits [..., V]
  virtual torch::Tensor lm_logits(const torch::Tensor& hidden) = 0;
  // A cache for generating up to `capacity` positions (prompt + new tokens).
  virtual nn::Cache new_cache(int64_t capacity) const = 0;
  // W [V, H] when lm_logits(h) is exactly h·Wᵀ (no adapter, no quantized base), else undefined:
  // the loss then fuses the head with the cross-entropy (ops::linear_cross_entropy).
  virtual torch::Tensor plain_head_weight() { return {}; }

  // input_ids: [B, T] → logits [B, T, V]
  torch::Tensor forward(const torch::Tensor& input_ids, const ForwardOptions& opts = {}) {
    return lm_logits(hidden_states(input_ids, opts).hidden);
  }
  const ArchConfig& config() const { return config_; }
  // The name of a parameter in the checkpoint (the family's prefix, e.g. "thinker.", + module name).
  std::string checkpoint_name(const std::string& name) const { return config_.weight_prefix + name; }

 protected:
  ArchConfig config_;
};

using CausalLM = std::shared_ptr<CausalLMImpl>;

}  // namespace gym::model
