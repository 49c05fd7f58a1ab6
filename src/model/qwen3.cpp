// Families qwen3 (Qwen3ForCausalLM) and qwen3_moe (Qwen3MoeForCausalLM): ../shared/specs/qwen3.md.
#include "model/config_fields.h"
#include "model/families.h"

namespace gym::model {

namespace {

ArchConfig parse_qwen3(const nlohmann::json& j, const std::string& source, bool moe) {
  ArchConfig c;
  c.model_type = moe ? "qwen3_moe" : "qwen3";
  c.source_json = j;
  read_decoder_fields(j, c, source, /*intermediate_required=*/!moe);
  if (moe) {
    read_moe_fields(j, c, source, /*norm_topk_default=*/false);
    if (c.num_experts <= 0) config_error("{}: a qwen3_moe config needs num_experts > 0", source);
  }
  check_arch(c, source);
  return c;
}

nlohmann::json qwen3_json(const ArchConfig& c) {
  auto j = base_json(c);
  j["architectures"] = {c.is_moe() ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM"};
  write_decoder_fields(j, c);
  if (c.is_moe()) write_moe_fields(j, c);
  return j;
}

ArchConfig qwen3_preset(const std::string& preset, bool moe) {
  ArchConfig c;
  c.model_type = moe ? "qwen3_moe" : "qwen3";
  apply_dense_preset(c, preset);
  if (moe) {
    c.num_experts = 8, c.num_experts_per_tok = 2, c.moe_intermediate_size = c.intermediate_size / 4;
    c.norm_topk_prob = true, c.router_aux_loss_coef = 0.001;
  }
  return c;
}

}  // namespace

ModelFamily qwen3_family() {
  return {"qwen3", [](const nlohmann::json& j, const std::string& s) { return parse_qwen3(j, s, false); }, qwen3_json,
          [](const std::string& p) { return qwen3_preset(p, false); }, [](const std::string&) { return false; }, build_decoder};
}

ModelFamily qwen3_moe_family() {
  return {"qwen3_moe", [](const nlohmann::json& j, const std::string& s) { return parse_qwen3(j, s, true); }, qwen3_json,
          [](const std::string& p) { return qwen3_preset(p, true); }, [](const std::string&) { return false; }, build_decoder};
}

}  // namespace gym::model
