#include "gym/model/decoder.h"

#include <torch/nn/functional/linear.h>

#include "gym/core/error.h"
#include "gym/core/profile.h"
#include "gym/ops/small_m_linear.h"
#include "model/checkpointing.h"

namespace gym::model {

namespace {

nn::AttentionOptions attention_options(const ArchConfig& c) {
  nn::AttentionOptions o;
  o.hidden = c.hidden_size, o.heads = c.num_attention_heads, o.kv_heads = c.num_key_value_heads, o.head_dim = c.head_dim;
  o.eps = c.rms_norm_eps, o.norm_unit_offset = c.norm_unit_offset, o.output_gate = c.attn_output_gate;
  return o;
}

nn::GatedDeltaNetOptions linear_attention_options(const ArchConfig& c) {
  nn::GatedDeltaNetOptions o;
  o.hidden = c.hidden_size, o.num_k_heads = c.linear_num_key_heads, o.num_v_heads = c.linear_num_value_heads;
  o.head_k_dim = c.linear_key_head_dim, o.head_v_dim = c.linear_value_head_dim, o.conv_kernel = c.linear_conv_kernel_dim;
  o.eps = c.rms_norm_eps;
  return o;
}

nn::MoeOptions moe_options(const ArchConfig& c) {
  nn::MoeOptions o;
  o.hidden = c.hidden_size, o.num_experts = c.num_experts, o.top_k = c.num_experts_per_tok;
  o.expert_intermediate = c.moe_intermediate_size, o.norm_topk_prob = c.norm_topk_prob;
  o.shared_expert_intermediate = c.shared_expert_intermediate_size;
  return o;
}

nn::RopeOptions rope_options(const ArchConfig& c) {
  nn::RopeOptions o;
  o.rotary_dim = c.rotary_dim(), o.theta = c.rope_theta, o.max_position_embeddings = c.max_position_embeddings;
  const auto& r = c.rope_scaling;
  o.scaling_type = r.type, o.factor = r.factor, o.original_max_position_embeddings = r.original_max_position_embeddings;
  o.attention_factor = r.attention_factor, o.beta_fast = r.beta_fast, o.beta_slow = r.beta_slow, o.truncate = r.truncate;
  return o;
}

}  // namespace

DecoderLayerImpl::DecoderLayerImpl(const ArchConfig& c, int64_t i, torch::TensorOptions o) : index(i) {
  if (c.is_linear_attention(i)) linear_attn = register_module("linear_attn", nn::GatedDeltaNet(linear_attention_options(c), o));
  else self_attn = register_module("self_attn", nn::Attention(attention_options(c), o));
  if (c.is_moe_layer(i)) moe = register_module("mlp", nn::SparseMoe(moe_options(c), o));
  else mlp = register_module("mlp", nn::MLP(c.hidden_size, c.intermediate_size, o));
  input_layernorm = register_module("input_layernorm", nn::RMSNorm(c.hidden_size, c.rms_norm_eps, c.norm_unit_offset, o));
  post_attention_layernorm =
      register_module("post_attention_layernorm", nn::RMSNorm(c.hidden_size, c.rms_norm_eps, c.norm_unit_offset, o));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const LayerInputs& in, nn::LayerCache* cache,
                                        std::vector<torch::Tensor>* router_logits) {
  auto normed = input_layernorm(x);
  auto h = x + (linear_attn ? linear_attn(normed, in.pad_mask, cache)
                            : self_attn(normed, in.attn_mask, in.cos, in.sin, cache, in.past, in.capacity));
  normed = post_attention_layernorm(h);
  if (moe) {
    auto [y, logits] = moe(normed);
    if (router_logits) router_logits->push_back(logits);
    return h + y;
  }
  return h + mlp(normed);
}

DecoderModelImpl::DecoderModelImpl(const ArchConfig& c, torch::TensorOptions o) {
  // Uninitialised, in o's dtype and on o's device (the loader fills it; no random init to pay for).
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size)
                                                                          ._weight(torch::empty({c.vocab_size, c.hidden_size}, o))));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(DecoderLayer(c, i, o));
  norm = register_module("norm", nn::RMSNorm(c.hidden_size, c.rms_norm_eps, c.norm_unit_offset, o));
  rotary_emb = register_module("rotary_emb", nn::RotaryEmbedding(rope_options(c), o.device()));
}

DecoderLMImpl::DecoderLMImpl(const ArchConfig& c, torch::TensorOptions o) : CausalLMImpl(c) {
  model = register_module("model", DecoderModel(c, o));
  if (!c.tie_word_embeddings) {
    lm_head = register_module("lm_head", nn::Linear(c.hidden_size, c.vocab_size, o));
    lm_head->role = nn::LinearRole::kHead;
  }
}

nn::Cache DecoderLMImpl::new_cache(int64_t capacity) const {
  nn::Cache cache;
  cache.layers.resize(static_cast<size_t>(config_.num_hidden_layers));
  cache.capacity = capacity;
  return cache;
}

ModelOutput DecoderLMImpl::hidden_states(const torch::Tensor& input_ids, const ForwardOptions& opts) {
  GYM_PROFILE("norms/elementwise");   // self time: embedding, RoPE tables, residual adds
  const int64_t b = input_ids.size(0), t = input_ids.size(1);
  nn::Cache* cache = opts.cache;
  const int64_t past = cache ? cache->length : 0;
  const torch::Tensor& mask = opts.attention_mask;
  if (mask.defined() && mask.size(1) != past + t)
    config_error("attention_mask has {} columns but the cache holds {} positions plus {} new tokens", mask.size(1), past, t);
  torch::Tensor positions = opts.position_ids;
  if (!positions.defined()) {
    positions = mask.defined() ? nn::positions_from_mask(mask, t)
                               : torch::arange(past, past + t, input_ids.options().dtype(torch::kInt64)).unsqueeze(0).expand({b, t});
  }
  ModelOutput out;
  auto x = model->embed_tokens(input_ids);
  LayerInputs in;
  std::tie(in.cos, in.sin) = model->rotary_emb->tables(positions, x.scalar_type());
  {
    GYM_PROFILE("cache");
    in.attn_mask = nn::causal_mask(mask, b, t, past, x);
    // The linear-attention layers zero padded inputs; multiplying a token by 1 is exact, so the
    // new tokens' mask is passed as it is rather than tested for padding (a host sync per forward).
    if (mask.defined()) in.pad_mask = mask.narrow(1, past, t);
  }
  in.past = past;
  in.capacity = cache ? std::max(cache->capacity, past + t) : 0;
  auto* router = opts.output_router_logits && config_.is_moe() ? &out.router_logits : nullptr;
  for (size_t i = 0; i < model->layers->size(); ++i) {
    auto layer = model->layers[i]->as<DecoderLayerImpl>();
    nn::LayerCache* lc = cache ? &cache->layers[i] : nullptr;
    if (opts.gradient_checkpointing && is_training() && !cache && !layer->moe) x = checkpointed_layer(*layer, x, in);
    else x = layer->forward(x, in, lc, router);
  }
  if (cache) {
    cache->length = past + t;
    cache->capacity = in.capacity;
  }
  out.hidden = model->norm(x);
  return out;
}

torch::Tensor DecoderLMImpl::plain_head_weight() {
  if (config_.tie_word_embeddings) return model->embed_tokens->weight;
  if (lm_head->has_lora() || lm_head->quantized_base() || !lm_head->weight.defined()) return {};
  return lm_head->weight;
}

torch::Tensor DecoderLMImpl::lm_logits(const torch::Tensor& hidden) {
  if (config_.tie_word_embeddings) {
    GYM_PROFILE("lm_head");
    return ops::linear(hidden, model->embed_tokens->weight);
  }
  return lm_head(hidden);
}

}  // namespace gym::model
