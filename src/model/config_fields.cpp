#include "model/config_fields.h"

namespace gym::model {

namespace {
std::optional<int64_t> optional_int(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number_integer()) return std::nullopt;
  return j[key].get<int64_t>();
}
}  // namespace

int64_t required_int(const nlohmann::json& j, const char* key, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) config_error("{}: missing required field '{}'", source, key);
  if (!j[key].is_number_integer()) config_error("{}: field '{}' must be an integer", source, key);
  return j[key].get<int64_t>();
}

void read_decoder_fields(const nlohmann::json& j, ArchConfig& c, const std::string& source, bool intermediate_required) {
  c.vocab_size = required_int(j, "vocab_size", source);
  c.hidden_size = required_int(j, "hidden_size", source);
  c.num_hidden_layers = required_int(j, "num_hidden_layers", source);
  // Checked here, before anything loops over the layers (the largest Qwen3 has 94).
  if (c.num_hidden_layers <= 0 || c.num_hidden_layers > 4096)
    config_error("{}: field 'num_hidden_layers' must lie in [1, 4096], got {}", source, c.num_hidden_layers);
  c.num_attention_heads = required_int(j, "num_attention_heads", source);
  c.intermediate_size = intermediate_required ? required_int(j, "intermediate_size", source)
                                              : optional_value<int64_t>(j, "intermediate_size", 0, source);
  c.num_key_value_heads = optional_value<int64_t>(j, "num_key_value_heads", c.num_attention_heads, source);
  c.head_dim = optional_value<int64_t>(j, "head_dim", c.hidden_size / std::max<int64_t>(1, c.num_attention_heads), source);
  c.rms_norm_eps = optional_value<double>(j, "rms_norm_eps", 1e-6, source);
  c.rope_theta = optional_value<double>(j, "rope_theta", 10000.0, source);
  c.max_position_embeddings = optional_value<int64_t>(j, "max_position_embeddings", 32768, source);
  c.tie_word_embeddings = optional_value<bool>(j, "tie_word_embeddings", false, source);
  c.attention_bias = optional_value<bool>(j, "attention_bias", false, source);
  c.torch_dtype = optional_value<std::string>(j, "torch_dtype", optional_value<std::string>(j, "dtype", "bfloat16", source), source);
  c.sliding_window = optional_int(j, "sliding_window");
  c.use_sliding_window = optional_value<bool>(j, "use_sliding_window", false, source);
  c.bos_token_id = optional_int(j, "bos_token_id");
  c.pad_token_id = optional_int(j, "pad_token_id");
  if (j.contains("eos_token_id")) {
    const auto& e = j["eos_token_id"];
    if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<int64_t>());
    else if (e.is_array())
      for (const auto& x : e) {
        if (!x.is_number_integer()) config_error("{}: field 'eos_token_id' must hold integers", source);
        c.eos_token_ids.push_back(x.get<int64_t>());
      }
  }
  const char* rope_key = j.contains("rope_scaling") ? "rope_scaling" : "rope_parameters";
  if (j.contains(rope_key) && j[rope_key].is_object()) {
    const auto& r = j[rope_key];
    const std::string where = source + ": " + rope_key;
    c.rope_scaling.type = optional_value<std::string>(r, "rope_type", optional_value<std::string>(r, "type", "default", where), where);
    if (c.rope_scaling.type != "default" && c.rope_scaling.type != "yarn")
      config_error("{}: rope_scaling type '{}' is not supported (default or yarn)", source, c.rope_scaling.type);
    c.rope_scaling.factor = optional_value<double>(r, "factor", 1.0, where);
    if (c.rope_scaling.type == "yarn" && !(c.rope_scaling.factor >= 1.0 && c.rope_scaling.factor <= 1e6))
      config_error("{}: field 'factor' must lie in [1, 1e6], got {}", where, c.rope_scaling.factor);
    c.rope_scaling.original_max_position_embeddings = optional_int(r, "original_max_position_embeddings");
    if (r.contains("attention_factor") && r["attention_factor"].is_number())
      c.rope_scaling.attention_factor = r["attention_factor"].get<double>();
    c.rope_scaling.beta_fast = optional_value<double>(r, "beta_fast", 32.0, where);
    c.rope_scaling.beta_slow = optional_value<double>(r, "beta_slow", 1.0, where);
    c.rope_scaling.truncate = optional_value<bool>(r, "truncate", true, where);
    if (r.contains("rope_theta") && r["rope_theta"].is_number()) c.rope_theta = r["rope_theta"].get<double>();
  }
}

void read_moe_fields(const nlohmann::json& j, ArchConfig& c, const std::string& source, bool norm_topk_default) {
  c.num_experts = optional_value<int64_t>(j, "num_experts", 0, source);
  if (c.num_experts <= 0) return;
  c.num_experts_per_tok = required_int(j, "num_experts_per_tok", source);
  c.moe_intermediate_size = required_int(j, "moe_intermediate_size", source);
  c.norm_topk_prob = optional_value<bool>(j, "norm_topk_prob", norm_topk_default, source);
  c.decoder_sparse_step = optional_value<int64_t>(j, "decoder_sparse_step", 1, source);
  c.mlp_only_layers = optional_value<std::vector<int64_t>>(j, "mlp_only_layers", {}, source);
  c.router_aux_loss_coef = optional_value<double>(j, "router_aux_loss_coef", 0.001, source);
  c.output_router_logits = optional_value<bool>(j, "output_router_logits", false, source);
  if (c.moe_intermediate_size <= 0) config_error("{}: field 'moe_intermediate_size' must be positive (got {})", source, c.moe_intermediate_size);
  if (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.num_experts)
    config_error("{}: num_experts_per_tok {} must lie in [1, num_experts {}]", source, c.num_experts_per_tok, c.num_experts);
  if (c.decoder_sparse_step < 1) config_error("{}: decoder_sparse_step must be ≥ 1", source);
}

void check_arch(const ArchConfig& c, const std::string& source) {
  auto positive = [&](int64_t v, const char* key) {
    if (v <= 0) config_error("{}: field '{}' must be positive (got {})", source, key, v);
  };
  positive(c.vocab_size, "vocab_size");
  positive(c.hidden_size, "hidden_size");
  positive(c.num_hidden_layers, "num_hidden_layers");
  positive(c.num_attention_heads, "num_attention_heads");
  positive(c.num_key_value_heads, "num_key_value_heads");
  positive(c.head_dim, "head_dim");
  if (!(c.rms_norm_eps > 0)) config_error("{}: field 'rms_norm_eps' must be positive", source);
  if (!(c.rope_theta > 0)) config_error("{}: field 'rope_theta' must be positive", source);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    config_error("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source, c.num_attention_heads,
                 c.num_key_value_heads);
  if (c.rotary_dim() % 2 != 0 || c.rotary_dim() <= 0 || c.rotary_dim() > c.head_dim)
    config_error("{}: the rotary dimension {} (head_dim {} × partial_rotary_factor {}) must be even and within head_dim", source,
                 c.rotary_dim(), c.head_dim, c.partial_rotary_factor);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    if (!c.is_moe_layer(i) && c.intermediate_size <= 0)
      config_error("{}: layer {} has a dense MLP but intermediate_size is not set", source, i);
}

void write_decoder_fields(nlohmann::json& j, const ArchConfig& c) {
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.type == "yarn") {
    j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", c.rope_scaling.factor}};
    if (c.rope_scaling.original_max_position_embeddings)
      j["rope_scaling"]["original_max_position_embeddings"] = *c.rope_scaling.original_max_position_embeddings;
  } else if (!j.contains("rope_scaling")) {
    j["rope_scaling"] = nullptr;
  }
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_bias"] = c.attention_bias;
  if (!j.contains("attention_dropout")) j["attention_dropout"] = 0.0;
  j["use_sliding_window"] = c.use_sliding_window;
  j["sliding_window"] = c.sliding_window ? nlohmann::json(*c.sliding_window) : nlohmann::json();
  j["torch_dtype"] = c.torch_dtype;
  if (j.contains("dtype")) j["dtype"] = c.torch_dtype;
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.pad_token_id) j["pad_token_id"] = *c.pad_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
}

void write_moe_fields(nlohmann::json& j, const ArchConfig& c) {
  j["num_experts"] = c.num_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["decoder_sparse_step"] = c.decoder_sparse_step;
  j["mlp_only_layers"] = c.mlp_only_layers;
  j["router_aux_loss_coef"] = c.router_aux_loss_coef;
  j["output_router_logits"] = c.output_router_logits;
}

nlohmann::json base_json(const ArchConfig& c) {
  if (c.source_json.is_object() && c.source_json.value("model_type", std::string()) == c.model_type) {
    auto j = c.source_json;
    j.erase("quantization_config");   // arch_config_to_json writes c.quantization_config
    return j;
  }
  return nlohmann::json::object();
}

}  // namespace gym::model
