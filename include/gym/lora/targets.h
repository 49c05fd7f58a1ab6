// Which linear layers get LoRA adapters, and the PEFT adapter_config.json.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "gym/config/config.h"

namespace gym::lora {

// PEFT's matching of target_modules against a module's full name (e.g.
// "model.layers.3.self_attn.q_proj"):
// - "all": every linear layer except lm_head and the MoE router (LLaMA-Factory's `all`);
// - a plain name ("q_proj"): the name itself or any module whose name ends with ".q_proj";
// - "gate": the MoE router "mlp.gate" (a name, so it never matches gate_proj);
// - a pattern with '*' ("experts.*.gate_proj", "layers.0.*"): a glob over the name's suffix.
bool is_target(const std::string& module_name, const std::vector<std::string>& targets, bool is_router = false);

// Scaling of the LoRA update: alpha / r, or alpha / sqrt(r) with rsLoRA.
double lora_scaling(double alpha, int64_t rank, bool use_rslora);

// adapter_config.json as PEFT writes it (peft_type LORA, task_type CAUSAL_LM, r, lora_alpha, ...).
nlohmann::json adapter_config_json(const config::LoraArgs& args, const std::string& base_model,
                                   const std::vector<std::string>& target_modules);

// The LoRA settings of an adapter_config.json written by PEFT or gym; rejects what gym cannot load
// (DoRA, non-LORA peft types, fan_in_fan_out, lora bias) with a clear error naming the file.
config::LoraArgs lora_args_from_adapter_config(const nlohmann::json& j, const std::string& path);

// PEFT's tensor-name prefix of a module: "base_model.model." + module name.
std::string peft_name(const std::string& module_name, const char* which /* "lora_A" | "lora_B" */);

}  // namespace gym::lora
