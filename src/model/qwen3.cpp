#include "gym/model/qwen3.h"

#include <torch/nn/functional/linear.h>

#include "gym/core/error.h"
#include "model/checkpointing.h"

namespace gym::model {

DecoderLayerImpl::DecoderLayerImpl(const ArchConfig& c, int64_t i, torch::TensorOptions o) : index(i) {
  self_attn = register_module("self_attn", nn::Attention(c, o));
  if (c.is_moe_layer(i)) moe = register_module("mlp", nn::SparseMoe(c, o));
  else mlp = register_module("mlp", nn::MLP(c.hidden_size, c.intermediate_size, o));
  input_layernorm = register_module("input_layernorm", nn::RMSNorm(c.hidden_size, c.rms_norm_eps, o));
  post_attention_layernorm = register_module("post_attention_layernorm", nn::RMSNorm(c.hidden_size, c.rms_norm_eps, o));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& cos,
                                        const torch::Tensor& sin, nn::KVCache* cache,
                                        std::vector<torch::Tensor>* router_logits) {
  auto h = x + self_attn(input_layernorm(x), mask, cos, sin, cache, index);
  auto normed = post_attention_layernorm(h);
  if (moe) {
    auto [y, logits] = moe(normed);
    if (router_logits) router_logits->push_back(logits);
    return h + y;
  }
  return h + mlp(normed);
}

Qwen3ModelImpl::Qwen3ModelImpl(const ArchConfig& c, torch::TensorOptions o) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size)));
  embed_tokens->weight.set_data(embed_tokens->weight.to(o.dtype()));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(DecoderLayer(c, i, o));
  norm = register_module("norm", nn::RMSNorm(c.hidden_size, c.rms_norm_eps, o));
}

Qwen3ForCausalLMImpl::Qwen3ForCausalLMImpl(const ArchConfig& c, torch::TensorOptions o) : config_(c), rope_(c) {
  model = register_module("model", Qwen3Model(c, o));
  if (!c.tie_word_embeddings) lm_head = register_module("lm_head", nn::Linear(c.hidden_size, c.vocab_size, o));
}

nn::KVCache Qwen3ForCausalLMImpl::new_cache(int64_t capacity) const {
  nn::KVCache cache;
  cache.k.resize(config_.num_hidden_layers);
  cache.v.resize(config_.num_hidden_layers);
  cache.capacity = capacity;
  return cache;
}

torch::Tensor Qwen3ForCausalLMImpl::hidden_states(const torch::Tensor& input_ids, const ForwardOptions& opts) {
  const int64_t b = input_ids.size(0), t = input_ids.size(1);
  const int64_t past = opts.cache ? opts.cache->length : 0;
  torch::Tensor mask = opts.attention_mask;
  if (mask.defined() && mask.size(1) != past + t)
    config_error("attention_mask has {} columns but the cache holds {} positions plus {} new tokens", mask.size(1), past, t);
  torch::Tensor positions = opts.position_ids;
  if (!positions.defined()) {
    positions = mask.defined() ? nn::positions_from_mask(mask, t)
                               : torch::arange(past, past + t, torch::kInt64).unsqueeze(0).expand({b, t});
  }
  auto x = model->embed_tokens(input_ids);
  const auto dtype = x.scalar_type();
  auto [cos, sin] = rope_.tables(positions, dtype);
  auto additive = nn::causal_mask(mask, b, t, past, dtype);
  for (size_t i = 0; i < model->layers->size(); ++i) {
    auto layer = model->layers[i]->as<DecoderLayerImpl>();
    if (opts.gradient_checkpointing && is_training() && !opts.cache && !layer->moe) {
      x = checkpointed_layer(*layer, x, additive, cos, sin, opts.router_logits);
    } else {
      x = layer->forward(x, additive, cos, sin, opts.cache, opts.router_logits);
    }
  }
  if (opts.cache) opts.cache->length = past + t;
  return model->norm(x);
}

torch::Tensor Qwen3ForCausalLMImpl::lm_logits(const torch::Tensor& hidden) {
  if (config_.tie_word_embeddings) return torch::nn::functional::linear(hidden, model->embed_tokens->weight);
  return lm_head(hidden);
}

torch::Tensor Qwen3ForCausalLMImpl::forward(const torch::Tensor& input_ids, const ForwardOptions& opts) {
  return lm_logits(hidden_states(input_ids, opts));
}

}  // namespace gym::model
