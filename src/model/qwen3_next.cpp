// Family qwen3_next (Qwen3NextForCausalLM): hybrid Gated DeltaNet / gated full attention layers,
// (1 + w) RMSNorms, partial RoPE, sparse MoE with an always-on shared expert
// (../shared/specs/qwen3_next_omni.md). The mtp.* tensors of real checkpoints are kept, not used.
#include "model/config_fields.h"
#include "model/families.h"

namespace gym::model {

namespace {

ArchConfig parse_next(const nlohmann::json& j, const std::string& source) {
  ArchConfig c;
  c.model_type = "qwen3_next";
  c.source_json = j;
  c.norm_unit_offset = true;
  c.attn_output_gate = true;
  read_decoder_fields(j, c, source, /*intermediate_required=*/false);
  read_moe_fields(j, c, source, /*norm_topk_default=*/true);
  c.shared_expert_intermediate_size = optional_value<int64_t>(j, "shared_expert_intermediate_size", 0, source);
  c.partial_rotary_factor = optional_value<double>(j, "partial_rotary_factor", 0.25, source);
  c.linear_num_key_heads = required_int(j, "linear_num_key_heads", source);
  c.linear_num_value_heads = required_int(j, "linear_num_value_heads", source);
  c.linear_key_head_dim = required_int(j, "linear_key_head_dim", source);
  c.linear_value_head_dim = required_int(j, "linear_value_head_dim", source);
  c.linear_conv_kernel_dim = optional_value<int64_t>(j, "linear_conv_kernel_dim", 4, source);
  if (j.contains("layer_types") && !j["layer_types"].is_null()) {
    c.layer_types = optional_value<std::vector<std::string>>(j, "layer_types", {}, source);
  } else {   // Qwen3NextConfig's default: every full_attention_interval-th layer is full attention
    const int64_t interval = optional_value<int64_t>(j, "full_attention_interval", 4, source);
    if (interval < 1) config_error("{}: full_attention_interval must be ≥ 1", source);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
      c.layer_types.push_back((i + 1) % interval == 0 ? "full_attention" : "linear_attention");
  }
  if (static_cast<int64_t>(c.layer_types.size()) != c.num_hidden_layers)
    config_error("{}: layer_types has {} entries but num_hidden_layers is {}", source, c.layer_types.size(), c.num_hidden_layers);
  for (const auto& t : c.layer_types)
    if (t != "full_attention" && t != "linear_attention")
      config_error("{}: layer_types entry '{}' is neither full_attention nor linear_attention", source, t);
  for (auto [v, key] : {std::pair{c.linear_num_key_heads, "linear_num_key_heads"}, {c.linear_num_value_heads, "linear_num_value_heads"},
                        {c.linear_key_head_dim, "linear_key_head_dim"}, {c.linear_value_head_dim, "linear_value_head_dim"},
                        {c.linear_conv_kernel_dim, "linear_conv_kernel_dim"}})
    if (v <= 0) config_error("{}: field '{}' must be positive (got {})", source, key, v);
  if (c.linear_num_value_heads % c.linear_num_key_heads != 0)
    config_error("{}: linear_num_value_heads {} is not a multiple of linear_num_key_heads {}", source, c.linear_num_value_heads,
                 c.linear_num_key_heads);
  check_arch(c, source);
  return c;
}

nlohmann::json next_json(const ArchConfig& c) {
  auto j = base_json(c);
  j["architectures"] = {"Qwen3NextForCausalLM"};
  write_decoder_fields(j, c);
  write_moe_fields(j, c);
  j["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
  j["partial_rotary_factor"] = c.partial_rotary_factor;
  j["linear_num_key_heads"] = c.linear_num_key_heads;
  j["linear_num_value_heads"] = c.linear_num_value_heads;
  j["linear_key_head_dim"] = c.linear_key_head_dim;
  j["linear_value_head_dim"] = c.linear_value_head_dim;
  j["linear_conv_kernel_dim"] = c.linear_conv_kernel_dim;
  j["layer_types"] = c.layer_types;
  return j;
}

ArchConfig next_preset(const std::string& preset) {
  ArchConfig c;
  c.model_type = "qwen3_next";
  apply_dense_preset(c, preset);
  c.norm_unit_offset = true;
  c.attn_output_gate = true;
  // The real Qwen3-Next unties lm_head; the tiny one ties it (as the dense tiny model) so that a
  // frozen random base leaves LoRA a usable output layer; its experts get half the dense width and
  // every other layer a dense MLP (a random router spreads too few tokens per expert to learn fast).
  c.tie_word_embeddings = preset == "tiny";
  if (preset == "tiny") c.decoder_sparse_step = 2;   // dense MLPs in layers 0 and 2, sparse in 1 and 3
  // 0.25 of the real head_dim 256 rotates 64 dims; a quarter of the tiny head_dim 16 would leave only
  // two frequencies, too few to learn positions with, so the tiny model rotates all 16.
  c.partial_rotary_factor = preset == "tiny" ? 1.0 : 0.25;
  c.num_experts = 8, c.num_experts_per_tok = 2, c.moe_intermediate_size = c.intermediate_size / (preset == "tiny" ? 2 : 4);
  c.shared_expert_intermediate_size = c.moe_intermediate_size;
  c.norm_topk_prob = true, c.router_aux_loss_coef = 0.001;
  c.linear_num_key_heads = c.num_key_value_heads, c.linear_num_value_heads = c.num_attention_heads;
  c.linear_key_head_dim = c.head_dim, c.linear_value_head_dim = c.head_dim, c.linear_conv_kernel_dim = 4;
  // The real model's 3:1 pattern; the tiny one alternates ([linear, full] × 2) so that, like the
  // dense tiny model, it has two softmax-attention layers to learn positions with.
  const int64_t interval = preset == "tiny" ? 2 : 4;
  if (preset == "tiny") c.num_hidden_layers = 4;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    c.layer_types.push_back((i + 1) % interval == 0 ? "full_attention" : "linear_attention");
  return c;
}

bool next_foreign(const std::string& name) { return name.rfind("mtp.", 0) == 0; }

}  // namespace

ModelFamily qwen3_next_family() { return {"qwen3_next", parse_next, next_json, next_preset, next_foreign, build_decoder}; }

}  // namespace gym::model
