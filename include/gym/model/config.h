// The architecture of a checkpoint, from its config.json (qwen3 and qwen3_moe).
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace gym::model {

struct RopeScaling {
  std::string type = "default";      // default | yarn
  double factor = 1.0;
  std::optional<int64_t> original_max_position_embeddings;
  std::optional<double> attention_factor;
  double beta_fast = 32.0, beta_slow = 1.0;
  bool truncate = true;
};

struct ArchConfig {
  std::string model_type = "qwen3";  // qwen3 | qwen3_moe
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;              // read from config.json; HF's fallback is hidden / heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 32768;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id, pad_token_id;
  std::string torch_dtype = "bfloat16";
  std::optional<int64_t> sliding_window;
  bool use_sliding_window = false;
  // qwen3_moe
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  bool norm_topk_prob = true;
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  double router_aux_loss_coef = 0.001;
  bool output_router_logits = false;
  nlohmann::json quantization_config;  // null unless a pre-quantized checkpoint

  bool is_moe() const { return model_type == "qwen3_moe"; }
  bool is_moe_layer(int64_t layer) const;
  int64_t num_moe_layers() const;
};

// Parses config.json text; `source` names the file in errors. Unknown model_type, missing
// required fields and qwen3_next (read, not yet supported) are clear config errors.
ArchConfig parse_arch_config(const nlohmann::json& j, const std::string& source);
ArchConfig load_arch_config(const std::filesystem::path& model_dir);
nlohmann::json arch_config_to_json(const ArchConfig& c);

// Named shapes for `gym create-model` and the benchmarks: tiny, small, qwen-like.
ArchConfig preset_arch(const std::string& arch, const std::string& preset);

}  // namespace gym::model
