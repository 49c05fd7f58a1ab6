// Family qwen3_omni_moe (Qwen3OmniMoeForConditionalGeneration), the thinker's text path: a
// Qwen3-MoE decoder stored under "thinker." with its hyper-parameters in
// thinker_config.text_config. For text, the interleaved mrope is plain 1-D RoPE over head_dim
// (../shared/specs/qwen3_next_omni.md). Audio/vision towers, talker and code2wav are kept, not read.
#include "model/config_fields.h"
#include "model/families.h"

namespace gym::model {

namespace {

const nlohmann::json& text_config(const nlohmann::json& j, const std::string& source) {
  if (!j.contains("thinker_config") || !j["thinker_config"].is_object())
    config_error("{}: a qwen3_omni_moe config needs the object 'thinker_config'", source);
  const auto& t = j["thinker_config"];
  if (!t.contains("text_config") || !t["text_config"].is_object())
    config_error("{}: a qwen3_omni_moe config needs the object 'thinker_config.text_config'", source);
  return t["text_config"];
}

ArchConfig parse_omni(const nlohmann::json& j, const std::string& source) {
  ArchConfig c;
  c.model_type = "qwen3_omni_moe";
  c.source_json = j;
  c.weight_prefix = "thinker.";
  const auto& t = text_config(j, source);
  const std::string where = source + ": thinker_config.text_config";
  read_decoder_fields(t, c, where, /*intermediate_required=*/false);
  read_moe_fields(t, c, where, /*norm_topk_default=*/true);
  c.torch_dtype = optional_value<std::string>(j, "torch_dtype", optional_value<std::string>(j, "dtype", c.torch_dtype, source), source);
  check_arch(c, where);
  return c;
}

nlohmann::json omni_json(const ArchConfig& c) {
  auto j = base_json(c);
  if (j.empty()) {   // a text-only Omni made by gym (create-model): the thinker's keys transformers needs
    const int64_t half = c.head_dim / 2, hw = half * 5 / 16;
    j = {{"architectures", {"Qwen3OmniMoeForConditionalGeneration"}},
         {"model_type", "qwen3_omni_moe"},
         {"enable_audio_output", false},
         {"thinker_config",
          {{"model_type", "qwen3_omni_moe_thinker"}, {"vision_start_token_id", 151652}, {"audio_token_id", 151646},
           {"image_token_id", 151655}, {"video_token_id", 151656},
           {"text_config",
            {{"rope_scaling",
              {{"rope_type", "default"}, {"mrope_section", {half - 2 * hw, hw, hw}}, {"interleaved", true}, {"mrope_interleaved", true}}}}}}}};
  }
  auto& t = j["thinker_config"]["text_config"];
  write_decoder_fields(t, c);
  write_moe_fields(t, c);
  t["model_type"] = "qwen3_omni_moe_text";
  j["torch_dtype"] = c.torch_dtype;
  if (j.contains("dtype")) j["dtype"] = c.torch_dtype;
  return j;
}

ArchConfig omni_preset(const std::string& preset) {
  ArchConfig c;
  c.model_type = "qwen3_omni_moe";
  c.weight_prefix = "thinker.";
  apply_dense_preset(c, preset);
  c.tie_word_embeddings = false;
  c.num_experts = 8, c.num_experts_per_tok = 2, c.moe_intermediate_size = c.intermediate_size / 4;
  c.norm_topk_prob = true, c.router_aux_loss_coef = 0.001;
  return c;
}

// Everything outside the thinker's text model: audio_tower, visual, talker, code2wav.
bool omni_foreign(const std::string& name) {
  return name.rfind("thinker.model.", 0) != 0 && name.rfind("thinker.lm_head.", 0) != 0;
}

}  // namespace

ModelFamily qwen3_omni_family() { return {"qwen3_omni_moe", parse_omni, omni_json, omni_preset, omni_foreign, build_decoder}; }

}  // namespace gym::model
