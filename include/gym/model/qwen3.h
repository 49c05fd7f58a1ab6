// Qwen3ForCausalLM (dense and MoE) with Hugging Face parameter names.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>

#include <vector>

#include "gym/model/config.h"
#include "gym/nn/layers.h"

namespace gym::model {

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ArchConfig& c, int64_t index, torch::TensorOptions options);
  // x: [B, T, H]; router_logits is appended to when the layer is MoE.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& cos,
                        const torch::Tensor& sin, nn::KVCache* cache, std::vector<torch::Tensor>* router_logits);
  nn::Attention self_attn{nullptr};
  nn::MLP mlp{nullptr};
  nn::SparseMoe moe{nullptr};   // registered as "mlp" when the layer is sparse
  nn::RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  int64_t index;
};
TORCH_MODULE(DecoderLayer);

class Qwen3ModelImpl : public torch::nn::Module {
 public:
  Qwen3ModelImpl(const ArchConfig& c, torch::TensorOptions options);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  nn::RMSNorm norm{nullptr};
};
TORCH_MODULE(Qwen3Model);

struct ForwardOptions {
  torch::Tensor attention_mask;   // [B, S] 1 = keep (S = cached + new); undefined = all ones
  torch::Tensor position_ids;     // [B, T]; default clamp(cumsum(mask) − 1, 0) of the new tokens
  nn::KVCache* cache = nullptr;   // appended to, when given
  std::vector<torch::Tensor>* router_logits = nullptr;   // MoE: one [B*T, E] per sparse layer
  bool gradient_checkpointing = false;                  // recompute each layer in backward
};

class Qwen3ForCausalLMImpl : public torch::nn::Module {
 public:
  Qwen3ForCausalLMImpl(const ArchConfig& c, torch::TensorOptions options = {});

  // input_ids: [B, T] → final hidden states [B, T, H] (after the last norm)
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const ForwardOptions& opts = {});
  // hidden: [..., H] → logits [..., V] (the tied embedding when tie_word_embeddings)
  torch::Tensor lm_logits(const torch::Tensor& hidden);
  // input_ids: [B, T] → logits [B, T, V]
  torch::Tensor forward(const torch::Tensor& input_ids, const ForwardOptions& opts = {});

  nn::KVCache new_cache(int64_t capacity) const;
  const ArchConfig& config() const { return config_; }

  Qwen3Model model{nullptr};
  nn::Linear lm_head{nullptr};   // not registered when tied

 private:
  ArchConfig config_;
  nn::Rope rope_;
};
TORCH_MODULE(Qwen3ForCausalLM);

}  // namespace gym::model
