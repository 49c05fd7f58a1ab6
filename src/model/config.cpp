#include "gym/model/config.h"

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"
#include "gym/model/family.h"

namespace gym::model {

bool ArchConfig::is_moe_layer(int64_t layer) const {
  if (num_experts <= 0) return false;
  for (auto l : mlp_only_layers)
    if (l == layer) return false;
  return (layer + 1) % std::max<int64_t>(1, decoder_sparse_step) == 0;
}

bool ArchConfig::is_linear_attention(int64_t layer) const {
  return layer >= 0 && layer < static_cast<int64_t>(layer_types.size()) &&
         layer_types[static_cast<size_t>(layer)] == "linear_attention";
}

int64_t ArchConfig::num_moe_layers() const {
  int64_t n = 0;
  for (int64_t i = 0; i < num_hidden_layers; ++i) n += is_moe_layer(i);
  return n;
}

double ArchConfig::num_parameters() const {
  const double h = static_cast<double>(hidden_size), d = static_cast<double>(head_dim);
  double n = static_cast<double>(vocab_size) * h * (tie_word_embeddings ? 1 : 2) + h;
  for (int64_t i = 0; i < num_hidden_layers; ++i) {
    n += 2 * h;
    if (is_linear_attention(i)) {
      const double key = static_cast<double>(linear_num_key_heads * linear_key_head_dim);
      const double value = static_cast<double>(linear_num_value_heads * linear_value_head_dim);
      n += h * (2 * key + 2 * value) + h * 2.0 * static_cast<double>(linear_num_value_heads) + value * h +
           (2 * key + value) * static_cast<double>(linear_conv_kernel_dim);
    } else {
      n += h * static_cast<double>(num_attention_heads) * d * (attn_output_gate ? 2 : 1) + 2 * h * static_cast<double>(num_key_value_heads) * d +
           static_cast<double>(num_attention_heads) * d * h + 2 * d;
    }
    if (is_moe_layer(i))
      n += static_cast<double>(num_experts) * 3 * h * static_cast<double>(moe_intermediate_size) + h * static_cast<double>(num_experts) +
           (shared_expert_intermediate_size > 0 ? 3 * h * static_cast<double>(shared_expert_intermediate_size) + h : 0.0);
    else
      n += 3 * h * static_cast<double>(intermediate_size);
  }
  return n;
}

ArchConfig parse_arch_config(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) config_error("{}: expected a JSON object", source);
  if (!j.contains("model_type") || !j["model_type"].is_string())
    config_error("{}: missing string field 'model_type'", source);
  ArchConfig c = model_family(j["model_type"].get<std::string>(), source).parse(j, source);
  if (j.contains("quantization_config")) c.quantization_config = j["quantization_config"];
  return c;
}

ArchConfig load_arch_config(const std::filesystem::path& model_dir) {
  const auto path = model_dir / "config.json";
  if (!std::filesystem::exists(path)) config_error("model folder '{}' has no config.json", model_dir.string());
  nlohmann::json j;
  try {
    j = parse_json(read_file(path));
  } catch (const nlohmann::json::exception& e) {   // parse_error, and out_of_range for a number like 1e999
    config_error("{}: invalid JSON: {}", path.string(), e.what());
  }
  return parse_arch_config(j, path.string());
}

nlohmann::json arch_config_to_json(const ArchConfig& c) {
  auto j = model_family(c.model_type).to_json(c);
  if (!c.quantization_config.is_null()) j["quantization_config"] = c.quantization_config;
  return j;
}

ArchConfig preset_arch(const std::string& arch, const std::string& preset) {
  ArchConfig c = model_family(arch, "--arch").preset(preset);
  c.eos_token_ids = {};
  return c;
}

}  // namespace gym::model
