// DeepSpeed JSON configs as LLaMA-Factory ships them: "auto" resolves from the gym config,
// an explicit value that disagrees with an explicitly set gym key is an error (as in HF's
// HfTrainerDeepSpeedConfig), and an explicit value beside a gym default is adopted.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>

#include "config/values.h"
#include "gym/core/error.h"
#include "gym/dist/env.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"

namespace gym::config {

namespace {

// The world size comes from the launch environment (dist/env.h, the one reader of it).
int64_t world_size_from_env() { return dist::config_world_size(); }

bool is_auto(const nlohmann::json& v) { return v.is_string() && v.get<std::string>() == "auto"; }

std::string show(const nlohmann::json& v) { return v.dump(); }

}  // namespace

int64_t apply_deepspeed(const std::string& path, Values& values, std::vector<std::string>& warnings) {
  if (!std::filesystem::exists(path)) config_error("deepspeed config '{}' does not exist", path);
  nlohmann::json ds;
  try {
    ds = parse_json(read_file(path));
  } catch (const nlohmann::json::exception& e) {   // parse_error, and out_of_range for a number like 1e999
    config_error("deepspeed config '{}': invalid JSON: {}", path, e.what());
  }
  if (!ds.is_object()) config_error("deepspeed config '{}': expected a JSON object", path);
  const Origin from_ds{"deepspeed", path};

  // One DeepSpeed field ↔ one gym key.
  auto bind = [&](const nlohmann::json* v, const std::string& ds_key, const std::string& key) {
    if (!v || v->is_null() || is_auto(*v)) return;
    const KeyDef* def = find_key(key);
    YAML::Node as_yaml(v->is_string() ? v->get<std::string>() : show(*v));
    YAML::Node ds_value = normalise_value(*def, as_yaml, path + ": " + ds_key);
    if (!values.explicitly_set(key)) {
      values.set(key, ds_value, from_ds);
      return;
    }
    const auto& mine = values.get(key);
    const bool equal = def->type == KeyType::Float
                           ? std::fabs(std::strtod(mine.value.Scalar().c_str(), nullptr) -
                                       std::strtod(ds_value.Scalar().c_str(), nullptr)) < 1e-12
                           : mine.value.Scalar() == ds_value.Scalar();
    if (!equal)
      config_error("deepspeed config '{}': {} = {} conflicts with {} = {} ({} {}); set it to \"auto\" or make them equal",
                   path, ds_key, show(*v), key, mine.value.Scalar(), mine.origin.kind, mine.origin.where);
  };
  auto field = [&](const char* a, const char* b = nullptr) -> const nlohmann::json* {
    if (!ds.contains(a)) return nullptr;
    if (!b) return &ds[a];
    return ds[a].is_object() && ds[a].contains(b) ? &ds[a][b] : nullptr;
  };

  bind(field("train_micro_batch_size_per_gpu"), "train_micro_batch_size_per_gpu", "per_device_train_batch_size");
  bind(field("gradient_accumulation_steps"), "gradient_accumulation_steps", "gradient_accumulation_steps");
  bind(field("gradient_clipping"), "gradient_clipping", "max_grad_norm");
  bind(field("bf16", "enabled"), "bf16.enabled", "bf16");
  bind(field("fp16", "enabled"), "fp16.enabled", "fp16");

  if (const auto* tbs = field("train_batch_size"); tbs && !is_auto(*tbs)) {
    const int64_t world = world_size_from_env();
    const int64_t expect = values.get_int("per_device_train_batch_size") * values.get_int("gradient_accumulation_steps") * world;
    if (!tbs->is_number_integer() || tbs->get<int64_t>() != expect)
      config_error("deepspeed config '{}': train_batch_size = {} but per_device_train_batch_size × gradient_accumulation_steps × world size = {}; set it to \"auto\"",
                   path, show(*tbs), expect);
  }

  std::vector<std::string> unsupported;
  int64_t stage = 0;
  if (const auto* z = field("zero_optimization"); z && z->is_object()) {
    if (z->contains("stage")) {
      if (!(*z)["stage"].is_number_integer()) config_error("deepspeed config '{}': zero_optimization.stage must be 0, 1, 2 or 3", path);
      stage = (*z)["stage"].get<int64_t>();
      if (stage < 0 || stage > 3) config_error("deepspeed config '{}': zero_optimization.stage must be 0, 1, 2 or 3, got {}", path, stage);
    }
    if (stage == 3)
      unsupported.push_back("ZeRO-3 parameter sharding: the frozen base is replicated on every process (sharding it is future work); "
                            "optimizer state and gradients are sharded as stage 2");
    if (z->contains("offload_optimizer") || z->contains("offload_param"))
      unsupported.push_back("offload_optimizer/offload_param: nothing is offloaded, everything stays in process memory (the frozen base "
                            "is replicated on every process)");
  }
  if (ds.contains("optimizer")) unsupported.push_back("the optimizer block (gym uses AdamW with the config's learning_rate, betas and weight_decay)");
  if (ds.contains("scheduler")) unsupported.push_back("the scheduler block (gym uses lr_scheduler_type and warm-up from the config)");
  if (values.get_bool("fp16")) unsupported.push_back("fp16 dynamic loss scaling");
  values.set("deepspeed", YAML::Node(path), values.get("deepspeed").origin);
  if (!unsupported.empty()) {
    std::string list;
    for (const auto& u : unsupported) list += (list.empty() ? "" : "; ") + u;
    warnings.push_back(fmt::format("deepspeed config '{}': not honoured yet: {}", path, list));
  }
  return stage;
}

}  // namespace gym::config
