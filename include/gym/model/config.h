// The architecture of a checkpoint, from its config.json. Every family (model_type) reads its
// own layout into this one struct through the family registry (gym/model/family.h).
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
  std::string model_type = "qwen3";  // a registered family: qwen3 | qwen3_moe | qwen3_next | qwen3_omni_moe
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
  double partial_rotary_factor = 1.0;   // Qwen3-Next: RoPE on the first head_dim × factor dims
  int64_t max_position_embeddings = 32768;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id, pad_token_id;
  std::string torch_dtype = "bfloat16";
  std::optional<int64_t> sliding_window;
  bool use_sliding_window = false;
  // Per-layer mixer: "full_attention" or "linear_attention" (empty: every layer full attention).
  std::vector<std::string> layer_types;
  // Family traits (set by the family's parser, not read from a key).
  bool norm_unit_offset = false;     // RMSNorms compute x̂·(1 + w) (Qwen3-Next)
  bool attn_output_gate = false;     // gated full attention (Qwen3-Next)
  std::string weight_prefix;         // checkpoint names of this model start with it ("thinker." for Omni)
  // Linear attention (Gated DeltaNet)
  int64_t linear_num_key_heads = 0, linear_num_value_heads = 0;
  int64_t linear_key_head_dim = 0, linear_value_head_dim = 0;
  int64_t linear_conv_kernel_dim = 4;
  // MoE (num_experts > 0)
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  int64_t shared_expert_intermediate_size = 0;   // Qwen3-Next's always-on shared expert
  bool norm_topk_prob = true;
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  double router_aux_loss_coef = 0.001;
  bool output_router_logits = false;
  nlohmann::json quantization_config;  // null unless a pre-quantized checkpoint
  nlohmann::json source_json;          // the config.json it was read from (null when built in code)

  bool is_moe() const { return num_experts > 0; }
  bool is_moe_layer(int64_t layer) const;
  bool is_linear_attention(int64_t layer) const;
  int64_t num_moe_layers() const;
  // Parameters the config implies (the text model gym builds), in double to survive absurd configs.
  double num_parameters() const;
  int64_t rotary_dim() const { return static_cast<int64_t>(static_cast<double>(head_dim) * partial_rotary_factor); }
};

// Parses config.json text; `source` names the file in errors. The model_type picks the family
// (an unknown one is a config error listing the known ones).
ArchConfig parse_arch_config(const nlohmann::json& j, const std::string& source);
ArchConfig load_arch_config(const std::filesystem::path& model_dir);
// config.json contents as the family writes them (quantization_config included when set).
nlohmann::json arch_config_to_json(const ArchConfig& c);

// Named shapes for `gym create-model` and the benchmarks: tiny, small, qwen-like.
ArchConfig preset_arch(const std::string& arch, const std::string& preset);

}  // namespace gym::model
