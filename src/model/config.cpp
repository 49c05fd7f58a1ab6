#include "gym/model/config.h"

#include "gym/core/error.h"
#include "gym/core/fs.h"

namespace gym::model {

namespace {

int64_t required_int(const nlohmann::json& j, const char* key, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) config_error("{}: missing required field '{}'", source, key);
  if (!j[key].is_number_integer()) config_error("{}: field '{}' must be an integer", source, key);
  return j[key].get<int64_t>();
}

template <typename T>
T optional_value(const nlohmann::json& j, const char* key, T fallback, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    config_error("{}: field '{}' has the wrong type ({})", source, key, j[key].dump());
  }
}

std::optional<int64_t> optional_int(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number_integer()) return std::nullopt;
  return j[key].get<int64_t>();
}

}  // namespace

bool ArchConfig::is_moe_layer(int64_t layer) const {
  if (!is_moe() || num_experts <= 0) return false;
  for (auto l : mlp_only_layers)
    if (l == layer) return false;
  return (layer + 1) % std::max<int64_t>(1, decoder_sparse_step) == 0;
}

int64_t ArchConfig::num_moe_layers() const {
  int64_t n = 0;
  for (int64_t i = 0; i < num_hidden_layers; ++i) n += is_moe_layer(i);
  return n;
}

ArchConfig parse_arch_config(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) config_error("{}: expected a JSON object", source);
  ArchConfig c;
  c.model_type = optional_value<std::string>(j, "model_type", "", source);
  if (c.model_type == "qwen3_next")
    config_error("{}: model_type qwen3_next (Gated DeltaNet hybrid, {} layers, {} experts) is read but not yet supported: "
                 "gym trains qwen3 and qwen3_moe", source, optional_value<int64_t>(j, "num_hidden_layers", 0, source),
                 optional_value<int64_t>(j, "num_experts", 0, source));
  if (c.model_type != "qwen3" && c.model_type != "qwen3_moe")
    config_error("{}: unknown model_type '{}' (gym supports qwen3 and qwen3_moe)", source, c.model_type);
  c.vocab_size = required_int(j, "vocab_size", source);
  c.hidden_size = required_int(j, "hidden_size", source);
  c.num_hidden_layers = required_int(j, "num_hidden_layers", source);
  c.num_attention_heads = required_int(j, "num_attention_heads", source);
  c.num_key_value_heads = optional_value<int64_t>(j, "num_key_value_heads", c.num_attention_heads, source);
  c.head_dim = optional_value<int64_t>(j, "head_dim", c.hidden_size / std::max<int64_t>(1, c.num_attention_heads), source);
  c.rms_norm_eps = optional_value<double>(j, "rms_norm_eps", 1e-6, source);
  c.rope_theta = optional_value<double>(j, "rope_theta", 10000.0, source);
  c.max_position_embeddings = optional_value<int64_t>(j, "max_position_embeddings", 32768, source);
  c.tie_word_embeddings = optional_value<bool>(j, "tie_word_embeddings", false, source);
  c.attention_bias = optional_value<bool>(j, "attention_bias", false, source);
  c.torch_dtype = optional_value<std::string>(j, "torch_dtype", "bfloat16", source);
  c.sliding_window = optional_int(j, "sliding_window");
  c.use_sliding_window = optional_value<bool>(j, "use_sliding_window", false, source);
  c.bos_token_id = optional_int(j, "bos_token_id");
  c.pad_token_id = optional_int(j, "pad_token_id");
  if (j.contains("eos_token_id")) {
    if (j["eos_token_id"].is_number_integer()) c.eos_token_ids.push_back(j["eos_token_id"].get<int64_t>());
    else if (j["eos_token_id"].is_array())
      for (const auto& e : j["eos_token_id"]) c.eos_token_ids.push_back(e.get<int64_t>());
  }
  const char* rope_key = j.contains("rope_scaling") ? "rope_scaling" : "rope_parameters";
  if (j.contains(rope_key) && j[rope_key].is_object()) {
    const auto& r = j[rope_key];
    c.rope_scaling.type = r.value("rope_type", r.value("type", std::string("default")));
    if (c.rope_scaling.type != "default" && c.rope_scaling.type != "yarn")
      config_error("{}: rope_scaling type '{}' is not supported (default or yarn)", source, c.rope_scaling.type);
    c.rope_scaling.factor = r.value("factor", 1.0);
    if (r.contains("original_max_position_embeddings"))
      c.rope_scaling.original_max_position_embeddings = r["original_max_position_embeddings"].get<int64_t>();
    if (r.contains("attention_factor") && r["attention_factor"].is_number())
      c.rope_scaling.attention_factor = r["attention_factor"].get<double>();
    c.rope_scaling.beta_fast = r.value("beta_fast", 32.0);
    c.rope_scaling.beta_slow = r.value("beta_slow", 1.0);
    c.rope_scaling.truncate = r.value("truncate", true);
    if (r.contains("rope_theta") && r["rope_theta"].is_number()) c.rope_theta = r["rope_theta"].get<double>();
  }
  if (c.is_moe()) {
    c.num_experts = required_int(j, "num_experts", source);
    c.num_experts_per_tok = required_int(j, "num_experts_per_tok", source);
    c.moe_intermediate_size = required_int(j, "moe_intermediate_size", source);
    c.norm_topk_prob = optional_value<bool>(j, "norm_topk_prob", false, source);
    c.decoder_sparse_step = optional_value<int64_t>(j, "decoder_sparse_step", 1, source);
    c.mlp_only_layers = optional_value<std::vector<int64_t>>(j, "mlp_only_layers", {}, source);
    c.router_aux_loss_coef = optional_value<double>(j, "router_aux_loss_coef", 0.001, source);
    c.output_router_logits = optional_value<bool>(j, "output_router_logits", false, source);
    c.intermediate_size = optional_value<int64_t>(j, "intermediate_size", 0, source);
    if (c.num_experts_per_tok > c.num_experts) config_error("{}: num_experts_per_tok > num_experts", source);
  } else {
    c.intermediate_size = required_int(j, "intermediate_size", source);
  }
  if (c.num_attention_heads % std::max<int64_t>(1, c.num_key_value_heads) != 0)
    config_error("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source, c.num_attention_heads,
                 c.num_key_value_heads);
  if (c.head_dim % 2 != 0) config_error("{}: head_dim {} must be even for RoPE", source, c.head_dim);
  if (j.contains("quantization_config")) c.quantization_config = j["quantization_config"];
  return c;
}

ArchConfig load_arch_config(const std::filesystem::path& model_dir) {
  const auto path = model_dir / "config.json";
  if (!std::filesystem::exists(path)) config_error("model folder '{}' has no config.json", model_dir.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    config_error("{}: invalid JSON: {}", path.string(), e.what());
  }
  return parse_arch_config(j, path.string());
}

nlohmann::json arch_config_to_json(const ArchConfig& c) {
  nlohmann::json j = {
      {"architectures", {c.is_moe() ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM"}},
      {"model_type", c.model_type},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"hidden_act", "silu"},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"rope_scaling", nullptr},
      {"max_position_embeddings", c.max_position_embeddings},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"attention_bias", c.attention_bias},
      {"attention_dropout", 0.0},
      {"use_sliding_window", false},
      {"sliding_window", nullptr},
      {"torch_dtype", c.torch_dtype},
  };
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.pad_token_id) j["pad_token_id"] = *c.pad_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
  if (c.rope_scaling.type == "yarn") {
    j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", c.rope_scaling.factor}};
    if (c.rope_scaling.original_max_position_embeddings)
      j["rope_scaling"]["original_max_position_embeddings"] = *c.rope_scaling.original_max_position_embeddings;
  }
  if (c.is_moe()) {
    j["num_experts"] = c.num_experts;
    j["num_experts_per_tok"] = c.num_experts_per_tok;
    j["moe_intermediate_size"] = c.moe_intermediate_size;
    j["norm_topk_prob"] = c.norm_topk_prob;
    j["decoder_sparse_step"] = c.decoder_sparse_step;
    j["mlp_only_layers"] = c.mlp_only_layers;
    j["router_aux_loss_coef"] = c.router_aux_loss_coef;
    j["output_router_logits"] = c.output_router_logits;
  }
  if (!c.quantization_config.is_null()) j["quantization_config"] = c.quantization_config;
  return j;
}

ArchConfig preset_arch(const std::string& arch, const std::string& preset) {
  if (arch != "qwen3" && arch != "qwen3_moe") config_error("unknown --arch '{}' (qwen3 or qwen3_moe)", arch);
  ArchConfig c;
  c.model_type = arch;
  c.rope_theta = 1e6;
  c.torch_dtype = "float32";
  c.eos_token_ids = {};
  if (preset == "tiny") {
    c.vocab_size = 512, c.hidden_size = 64, c.intermediate_size = 128, c.num_hidden_layers = 2;
    c.num_attention_heads = 4, c.num_key_value_heads = 2, c.head_dim = 16, c.max_position_embeddings = 256;
    c.tie_word_embeddings = true;
  } else if (preset == "small") {
    c.vocab_size = 32000, c.hidden_size = 512, c.intermediate_size = 1536, c.num_hidden_layers = 8;
    c.num_attention_heads = 8, c.num_key_value_heads = 4, c.head_dim = 64, c.max_position_embeddings = 4096;
    c.tie_word_embeddings = true;
  } else if (preset == "qwen-like") {
    c.vocab_size = 151936, c.hidden_size = 512, c.intermediate_size = 1536, c.num_hidden_layers = 4;
    c.num_attention_heads = 8, c.num_key_value_heads = 4, c.head_dim = 64, c.max_position_embeddings = 4096;
    c.tie_word_embeddings = true;
  } else {
    config_error("unknown preset '{}' (tiny, small, qwen-like)", preset);
  }
  if (c.is_moe()) {
    c.num_experts = 8;
    c.num_experts_per_tok = 2;
    c.moe_intermediate_size = c.intermediate_size / 4;
    c.norm_topk_prob = true;
    c.router_aux_loss_coef = 0.001;
  }
  return c;
}

}  // namespace gym::model
