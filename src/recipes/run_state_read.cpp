#include <cmath>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"
#include "gym/recipes/run_state.h"

namespace gym::recipes {

// A checkpoint's trainer_state.json: every field typed and in range before anything is restored.
// Kept apart from load_checkpoint (no model, optimizer or LibTorch archive) so that the reader
// alone is fuzzed (fuzz/trainer_state_fuzz.cpp).
RunState read_run_state(const std::filesystem::path& state_path) {
  nlohmann::json j;
  try {
    j = parse_json(read_file(state_path));
  } catch (const nlohmann::json::exception& e) {   // parse_error, and out_of_range for a number like 1e999
    config_error("{}: invalid JSON: {}", state_path.string(), e.what());
  }
  if (!j.is_object()) config_error("{}: expected a JSON object", state_path.string());
  auto count = [&](const char* key, bool required) -> int64_t {
    if (!j.contains(key)) {
      if (required) config_error("{}: missing field '{}'", state_path.string(), key);
      return 0;
    }
    if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0)
      config_error("{}: field '{}' must be a non-negative integer, got {}", state_path.string(), key, j[key].dump());
    return j[key].get<int64_t>();
  };
  RunState s;
  s.global_step = count("global_step", true);
  s.tokens_seen = count("num_input_tokens_seen", false);
  if (j.contains("epoch") && !(j["epoch"].is_number() && j["epoch"].get<double>() >= 0 && std::isfinite(j["epoch"].get<double>())))
    config_error("{}: field 'epoch' must be a non-negative number, got {}", state_path.string(), j["epoch"].dump());
  s.epoch = j.contains("epoch") ? j["epoch"].get<double>() : 0.0;
  for (const char* key : {"gym_data_state", "gym_extra"})
    if (j.contains(key) && !j[key].is_object() && !j[key].is_null())
      config_error("{}: field '{}' must be an object", state_path.string(), key);
  s.data_state = j.value("gym_data_state", nlohmann::json());
  s.extra = j.contains("gym_extra") && j["gym_extra"].is_object() ? j["gym_extra"] : nlohmann::json::object();
  // load_best_model_at_end / early stopping bookkeeping (HF's field names)
  if (j.contains("best_metric") && !j["best_metric"].is_null()) {
    if (!j["best_metric"].is_number()) config_error("{}: field 'best_metric' must be a number or null", state_path.string());
    s.best_metric = j["best_metric"].get<double>();
  }
  if (j.contains("best_global_step") && !j["best_global_step"].is_null()) s.best_global_step = count("best_global_step", false);
  if (j.contains("best_model_checkpoint") && !j["best_model_checkpoint"].is_null()) {
    if (!j["best_model_checkpoint"].is_string()) config_error("{}: field 'best_model_checkpoint' must be a string or null", state_path.string());
    s.best_model_checkpoint = j["best_model_checkpoint"].get<std::string>();
  }
  const auto counter = j.contains("stateful_callbacks") && j["stateful_callbacks"].is_object()
                           ? j["stateful_callbacks"].value("/EarlyStoppingCallback/attributes/early_stopping_patience_counter"_json_pointer, nlohmann::json())
                           : nlohmann::json();
  if (counter.is_number_integer() && counter.get<int64_t>() >= 0) s.early_stopping_patience_counter = counter.get<int64_t>();
  return s;
}

}  // namespace gym::recipes
