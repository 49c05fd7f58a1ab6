#include "config/values.h"

#include <cmath>
#include <cstdlib>
#include <fmt/format.h>

#include "gym/core/error.h"

namespace gym::config {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool parse_bool(const std::string& s, bool& out) {
  const std::string l = lower(s);
  if (l == "true" || l == "yes" || l == "on" || l == "1") return out = true, true;
  if (l == "false" || l == "no" || l == "off" || l == "0") return out = false, true;
  return false;
}

// Numbers parse with strtod: `1e-5` is a float (PyYAML's YAML 1.1 would read it as a string).
bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(out);
}

bool parse_int(const std::string& s, int64_t& out) {
  double d;
  if (!parse_double(s, d) || std::floor(d) != d || std::fabs(d) > 9.0e15) return false;
  out = static_cast<int64_t>(d);
  return true;
}

std::string describe(const YAML::Node& n) {
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "null";
}

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    std::string item = s.substr(start, comma - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

}  // namespace

std::string where_of(const std::string& file, const YAML::Node& node) {
  const auto m = node.Mark();
  if (m.line < 0) return file;
  return fmt::format("{}:{}", file, m.line + 1);
}

YAML::Node normalise_value(const KeyDef& def, const YAML::Node& raw, const std::string& where) {
  if (!raw.IsDefined() || raw.IsNull()) return YAML::Node(YAML::NodeType::Null);
  auto bad = [&]() -> YAML::Node {
    config_error("{}: key '{}' expects {}, got {}", where, def.name, type_name(def.type), describe(raw));
  };
  switch (def.type) {
    case KeyType::Bool: {
      bool b;
      if (!raw.IsScalar() || !parse_bool(raw.Scalar(), b)) bad();
      return YAML::Node(b ? "true" : "false");
    }
    case KeyType::Int: {
      int64_t i;
      if (!raw.IsScalar() || !parse_int(raw.Scalar(), i)) {
        double d;
        if (raw.IsScalar() && parse_double(raw.Scalar(), d) && std::floor(d) == d)
          config_error("{}: key '{}' is {}, beyond what gym accepts (|n| <= 9e15)", where, def.name, describe(raw));
        bad();
      }
      return YAML::Node(std::to_string(i));
    }
    case KeyType::Float: {
      double d;
      if (!raw.IsScalar() || !parse_double(raw.Scalar(), d)) bad();
      return YAML::Node(fmt::format("{}", d));
    }
    case KeyType::String: {
      if (!raw.IsScalar()) bad();
      return YAML::Node(raw.Scalar());
    }
    case KeyType::List:
    case KeyType::FloatList: {
      std::vector<std::string> items;
      if (raw.IsScalar()) {
        items = split_csv(raw.Scalar());
      } else if (raw.IsSequence()) {
        for (const auto& it : raw) {
          if (!it.IsScalar()) bad();
          items.push_back(it.Scalar());
        }
      } else {
        bad();
      }
      YAML::Node seq(YAML::NodeType::Sequence);
      for (const auto& s : items) {
        if (def.type == KeyType::FloatList) {
          double d;
          if (!parse_double(s, d)) config_error("{}: key '{}' expects {}, got item '{}'", where, def.name, type_name(def.type), s);
          seq.push_back(fmt::format("{}", d));
        } else {
          seq.push_back(s);
        }
      }
      return seq;
    }
  }
  return raw;
}

bool Values::explicitly_set(const std::string& key) const {
  auto it = entries_.find(key);
  return it != entries_.end() && it->second.origin.kind != "default" && it->second.origin.kind != "derived";
}

const Entry& Values::get(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) runtime_error("internal: config key '{}' was not resolved", key);
  return it->second;
}

void Values::resolve_defaults() {
  std::string stage = "sft";
  if (auto it = entries_.find("stage"); it != entries_.end() && it->second.value.IsScalar()) stage = it->second.value.Scalar();
  for (const auto& def : key_table()) {
    auto it = entries_.find(def.name);
    if (it != entries_.end() && !it->second.value.IsNull()) continue;
    // A key set to null falls back to its default (and no longer counts as set explicitly).
    Origin origin = it != entries_.end() ? Origin{"default", "null at " + it->second.origin.where} : Origin{"default", ""};
    const char* text = def.default_value;
    if (const char* sd = stage_default(def.name, stage)) {
      text = sd;
      if (origin.kind == "default") origin.where = "stage " + stage;
    }
    YAML::Node value = normalise_value(def, YAML::Load(text), "default");
    entries_[def.name] = {value, origin};
  }
}

bool Values::get_bool(const std::string& k) const { return get(k).value.Scalar() == "true"; }
int64_t Values::get_int(const std::string& k) const {
  const auto& v = get(k).value;
  return v.IsNull() ? 0 : std::stoll(v.Scalar());
}
double Values::get_float(const std::string& k) const {
  const auto& v = get(k).value;
  return v.IsNull() ? 0.0 : std::strtod(v.Scalar().c_str(), nullptr);
}
std::string Values::get_string(const std::string& k) const {
  const auto& v = get(k).value;
  return v.IsNull() ? "" : v.Scalar();
}
std::vector<std::string> Values::get_list(const std::string& k) const {
  std::vector<std::string> out;
  const auto& v = get(k).value;
  if (v.IsSequence())
    for (const auto& it : v) out.push_back(it.Scalar());
  return out;
}
std::vector<double> Values::get_float_list(const std::string& k) const {
  std::vector<double> out;
  for (const auto& s : get_list(k)) out.push_back(std::strtod(s.c_str(), nullptr));
  return out;
}

}  // namespace gym::config
