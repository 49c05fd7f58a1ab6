// The decoder stack shared by the Qwen3 families, with Hugging Face parameter names:
//   model.embed_tokens → layers (x += mixer(norm(x)); x += mlp(norm(x))) → model.norm → lm_head
// Each layer's mixer is full attention (self_attn, optionally gated) or Gated DeltaNet
// (linear_attn), and its MLP dense or sparse (with an optional shared expert), as config.json says.
#pragma once
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>

#include "gym/model/causal_lm.h"
#include "gym/nn/layers.h"

namespace gym::model {

// What every layer of one forward pass shares.
struct LayerInputs {
  torch::Tensor attn_mask;   // [B, 1, T, S] additive, for attention layers
  torch::Tensor pad_mask;    // [B, T] 1 = token, for linear-attention layers; undefined = no padding
  torch::Tensor cos, sin;    // [B, 1, T, R]
  int64_t past = 0, capacity = 0;   // cache position and capacity (attention buffers)
};

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ArchConfig& c, int64_t index, torch::TensorOptions options);
  // x: [B, T, H]; router_logits is appended to when the layer is sparse.
  torch::Tensor forward(const torch::Tensor& x, const LayerInputs& in, nn::LayerCache* cache,
                        std::vector<torch::Tensor>* router_logits);
  nn::Attention self_attn{nullptr};        // full-attention layers
  nn::GatedDeltaNet linear_attn{nullptr};  // linear-attention layers
  nn::MLP mlp{nullptr};                    // dense layers
  nn::SparseMoe moe{nullptr};              // sparse layers (registered as "mlp")
  nn::RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  int64_t index;
};
TORCH_MODULE(DecoderLayer);

class DecoderModelImpl : public torch::nn::Module {
 public:
  DecoderModelImpl(const ArchConfig& c, torch::TensorOptions options);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  nn::RMSNorm norm{nullptr};
  nn::RotaryEmbedding rotary_emb{nullptr};
};
TORCH_MODULE(DecoderModel);

class DecoderLMImpl : public CausalLMImpl {
 public:
  DecoderLMImpl(const ArchConfig& c, torch::TensorOptions options = {});
  ModelOutput hidden_states(const torch::Tensor& input_ids, const ForwardOptions& opts = {}) override;
  torch::Tensor lm_logits(const torch::Tensor& hidden) override;   // the tied embedding when tie_word_embeddings
  nn::Cache new_cache(int64_t capacity) const override;
  torch::Tensor plain_head_weight() override;

  DecoderModel model{nullptr};
  nn::Linear lm_head{nullptr};   // not registered when tied
};

}  // namespace gym::model
