// The survey of keys from LLaMA-Factory, HF TrainingArguments, TRL and Axolotl that are not in
// gym's key table, and what gym does with each (docs/config.md prints it as a table):
//   renamed      the same meaning under gym's name (micro_batch_size → per_device_train_batch_size)
//   implemented  a special rule in the loader (load_in_4bit: true → quantization_bit 4, ...)
//   warned       accepted and unused, listed in one warning: ignoring it changes speed, memory,
//                logging or hub behaviour, not what is computed
//   guarded      accepted with the warning while its value is harmless (off, null, empty, or one of
//                `harmless`), else a config error: ignoring that value would change the results
#pragma once
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace gym::config {

enum class ForeignUse { Renamed, Implemented, Warned, Guarded };

struct ForeignKey {
  const char* name;
  const char* source;     // LLaMA-Factory, HF TrainingArguments, TRL, Axolotl (", "-joined when shared)
  ForeignUse use;
  const char* target;     // Renamed: gym's key; Guarded: harmless values besides off/null/empty, "|"-separated
  const char* note;       // what gym does instead, or why a value is refused
};

const std::vector<ForeignKey>& foreign_keys();
const ForeignKey* find_foreign_key(const std::string& name);

// Guarded keys: whether `value` may be ignored (off, null, empty, or a harmless value).
bool foreign_value_harmless(const ForeignKey& k, const YAML::Node& value);

// The "gym" column of the survey table: "= `key`", "implemented", "warned", "refused unless ...".
std::string foreign_use_text(const ForeignKey& k);

}  // namespace gym::config
