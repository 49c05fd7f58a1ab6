// The key table: every configuration key gym knows, with type, default and help.
#pragma once
#include <string>
#include <vector>

namespace gym::config {

enum class KeyType { Bool, Int, Float, String, List, FloatList };

struct KeyDef {
  const char* name;
  const char* section;      // model | method | quantization | data | rl | training | output | distributed
  KeyType type;
  const char* default_value;  // YAML text; "null" = unset
  const char* help;
};

const std::vector<KeyDef>& key_table();
const KeyDef* find_key(const std::string& name);
const char* type_name(KeyType t);

// Defaults that depend on the stage (GSPO paper / TRL recipes); nullptr when none.
const char* stage_default(const std::string& key, const std::string& stage);

// Groups whose nested maps or dotted prefixes are flattened (`trl.beta`, `trl: {beta: ..}`).
bool is_group_name(const std::string& name);

// The nearest known key for a "did you mean" hint (empty when nothing is close).
std::string nearest_key(const std::string& name);

}  // namespace gym::config
