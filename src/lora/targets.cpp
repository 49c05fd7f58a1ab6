#include "gym/lora/targets.h"

#include <cmath>

#include "gym/core/error.h"
#include "gym/core/json.h"

namespace gym::lora {

namespace {

// '*' matches any run of characters within the name (dots included), as a simple glob.
bool glob_match(const char* pat, const char* s) {
  if (*pat == '\0') return *s == '\0';
  if (*pat == '*') return glob_match(pat + 1, s) || (*s != '\0' && glob_match(pat, s + 1));
  return *s == *pat && glob_match(pat + 1, s + 1);
}

bool ends_with_component(const std::string& name, const std::string& key) {
  if (name == key) return true;
  return name.size() > key.size() && name.compare(name.size() - key.size(), key.size(), key) == 0 &&
         name[name.size() - key.size() - 1] == '.';
}

}  // namespace

bool is_target(const std::string& module_name, const std::vector<std::string>& targets, bool is_router) {
  if (module_name == "lm_head" || ends_with_component(module_name, "lm_head")) {
    for (const auto& t : targets)
      if (t == "lm_head") return true;
    return false;
  }
  for (const auto& t : targets) {
    if (t == "all") {
      if (!is_router) return true;
      continue;
    }
    if (t.find('*') != std::string::npos) {
      // Match the pattern against every suffix that starts at a component boundary.
      if (glob_match(t.c_str(), module_name.c_str())) return true;
      for (size_t i = 0; i < module_name.size(); ++i)
        if (module_name[i] == '.' && glob_match(t.c_str(), module_name.c_str() + i + 1)) return true;
      continue;
    }
    if (ends_with_component(module_name, t)) return true;
  }
  return false;
}

double lora_scaling(double alpha, int64_t rank, bool use_rslora) {
  return use_rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

nlohmann::json adapter_config_json(const config::LoraArgs& args, const std::string& base_model,
                                   const std::vector<std::string>& target_modules) {
  return {{"peft_type", "LORA"},
          {"task_type", "CAUSAL_LM"},
          {"base_model_name_or_path", base_model},
          {"r", args.rank},
          {"lora_alpha", args.alpha},
          {"lora_dropout", args.dropout},
          {"bias", "none"},
          {"use_rslora", args.use_rslora},
          {"use_dora", false},
          {"fan_in_fan_out", false},
          {"target_modules", target_modules},
          {"modules_to_save", nullptr},
          {"rank_pattern", nlohmann::json::object()},
          {"alpha_pattern", nlohmann::json::object()},
          {"layers_to_transform", nullptr},
          {"init_lora_weights", true},
          {"inference_mode", true},
          {"revision", nullptr},
          {"library", "gym"}};
}

config::LoraArgs lora_args_from_adapter_config(const nlohmann::json& j, const std::string& path) {
  return json_reader(path, [&] {
    if (!j.is_object()) config_error("{}: adapter_config.json must be a JSON object", path);
    if (j.value("peft_type", std::string("LORA")) != "LORA")
      config_error("{}: peft_type '{}' is not supported (only LORA)", path, j.value("peft_type", std::string()));
    if (j.value("use_dora", false)) config_error("{}: DoRA adapters (use_dora: true) are not supported", path);
    if (j.value("fan_in_fan_out", false)) config_error("{}: fan_in_fan_out adapters are not supported", path);
    if (j.contains("bias") && j["bias"].is_string() && j["bias"] != "none")
      config_error("{}: LoRA bias '{}' is not supported (only \"none\")", path, j["bias"].get<std::string>());
    if (!j.contains("r") || !j["r"].is_number_integer()) config_error("{}: missing integer field 'r'", path);
    config::LoraArgs a;
    a.rank = j["r"].get<int64_t>();
    if (a.rank <= 0 || a.rank > 65536) config_error("{}: field 'r' must lie in [1, 65536], got {}", path, a.rank);
    auto number = [&](const char* key, double fallback) {
      if (!j.contains(key) || j[key].is_null()) return fallback;
      if (!j[key].is_number()) config_error("{}: field '{}' must be a number, got {}", path, key, j[key].dump());
      const double v = j[key].get<double>();
      if (!std::isfinite(v)) config_error("{}: field '{}' must be finite", path, key);
      return v;
    };
    a.alpha = number("lora_alpha", 8.0);
    if (!(std::abs(a.alpha) <= 1e6)) config_error("{}: field 'lora_alpha' must lie in [-1e6, 1e6], got {}", path, a.alpha);
    a.dropout = number("lora_dropout", 0.0);
    if (a.dropout < 0 || a.dropout >= 1) config_error("{}: field 'lora_dropout' must lie in [0, 1), got {}", path, a.dropout);
    if (j.contains("use_rslora") && !j["use_rslora"].is_null() && !j["use_rslora"].is_boolean())
      config_error("{}: field 'use_rslora' must be true or false", path);
    a.use_rslora = j.contains("use_rslora") && j["use_rslora"].is_boolean() && j["use_rslora"].get<bool>();
    a.target.clear();
    if (j.contains("target_modules") && !j["target_modules"].is_null()) {
      const auto& t = j["target_modules"];
      if (t.is_array()) {
        for (const auto& x : t) {
          if (!x.is_string()) config_error("{}: field 'target_modules' must hold strings, got {}", path, x.dump());
          a.target.push_back(x.get<std::string>());
        }
      } else if (t.is_string()) {
        a.target.push_back(t.get<std::string>());
      } else {
        config_error("{}: field 'target_modules' must be a string or a list of strings", path);
      }
    }
    if (j.contains("rank_pattern") && j["rank_pattern"].is_object() && !j["rank_pattern"].empty())
      config_error("{}: rank_pattern is not supported yet", path);
    if (j.contains("alpha_pattern") && j["alpha_pattern"].is_object() && !j["alpha_pattern"].empty())
      config_error("{}: alpha_pattern is not supported yet", path);
    return a;
  });
}

std::string peft_name(const std::string& module_name, const char* which) {
  return "base_model.model." + module_name + "." + which + ".weight";
}

}  // namespace gym::lora
