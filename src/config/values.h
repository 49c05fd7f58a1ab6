// Explicit configuration values with their origins, as read from files and overrides.
#pragma once
#include <yaml-cpp/yaml.h>

#include <map>
#include <string>
#include <vector>

#include "config/schema.h"
#include "gym/config/config.h"

namespace gym::config {

struct Entry {
  YAML::Node value;   // normalised: scalar, null, or a sequence of scalars
  Origin origin;
};

// Key → value; unset keys fall back to the stage default, then the table default.
class Values {
 public:
  void set(const std::string& key, YAML::Node value, Origin origin) { entries_[key] = {value, std::move(origin)}; }
  bool explicitly_set(const std::string& key) const;   // from a file, override or deepspeed
  const Entry& get(const std::string& key) const;      // resolved (never null for keys with defaults)
  void resolve_defaults();                             // fills every table key
  const std::map<std::string, Entry>& entries() const { return entries_; }

  bool get_bool(const std::string& k) const;
  int64_t get_int(const std::string& k) const;
  double get_float(const std::string& k) const;
  std::string get_string(const std::string& k) const;  // "" when null
  std::vector<std::string> get_list(const std::string& k) const;
  std::vector<double> get_float_list(const std::string& k) const;
  bool is_null(const std::string& k) const { return get(k).value.IsNull(); }

 private:
  std::map<std::string, Entry> entries_;
};

// Checks a raw value against the key's type and returns it normalised; throws naming `where`.
YAML::Node normalise_value(const KeyDef& def, const YAML::Node& raw, const std::string& where);

// "file:line" of a YAML node.
std::string where_of(const std::string& file, const YAML::Node& node);

// DeepSpeed JSON: resolves "auto" from the gym values, rejects conflicts; returns the ZeRO stage.
int64_t apply_deepspeed(const std::string& path, Values& values, std::vector<std::string>& warnings);

// Fills the typed structs and runs the cross-field checks.
TrainConfig build_config(Values& values, std::vector<std::string>& warnings);

}  // namespace gym::config
