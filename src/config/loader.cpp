// YAML files (+ extends) and command-line overrides → explicit Values → resolved TrainConfig.
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <limits>

#include "config/foreign_keys.h"
#include "config/values.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"

namespace gym::config {

namespace {

struct Reader {
  Values values;
  std::vector<std::string> foreign;        // accepted-but-unused keys, reported once
  std::vector<std::filesystem::path> files;

  void add(std::string key, const YAML::Node& value, const Origin& origin) {
    std::replace(key.begin(), key.end(), '-', '_');   // Axolotl-style kebab-case flags
    // Groups: `trl: {beta: 0.04}` and `trl.beta=0.04` both mean `beta`.
    if (auto dot = key.find('.'); dot != std::string::npos) {
      const std::string group = key.substr(0, dot);
      if (!is_group_name(group)) unknown(key, origin);
      return add(key.substr(dot + 1), value, origin);
    }
    if (is_group_name(key) && value.IsMap()) {
      for (const auto& kv : value) add(kv.first.Scalar(), kv.second, with_line(origin, kv.first));
      return;
    }
    if (apply_alias(key, value, origin)) return;
    if (const KeyDef* def = find_key(key)) {
      values.set(key, normalise_value(*def, value, origin.where), origin);
    } else if (const ForeignKey* f = find_foreign_key(key)) {
      if (f->use == ForeignUse::Guarded && !foreign_value_harmless(*f, value)) {
        YAML::Emitter em;
        em << YAML::Flow << value;
        config_error("{}: key '{}' ({}) is {}, which gym does not implement and which would change the results: {}", origin.where, key,
                     f->source, em.c_str(), f->note);
      }
      if (std::find(foreign.begin(), foreign.end(), key) == foreign.end()) foreign.push_back(key);
    } else {
      unknown(key, origin);
    }
  }

  static Origin with_line(const Origin& o, const YAML::Node& node) {
    if (o.kind != "file") return o;
    std::string file = o.where.substr(0, o.where.rfind(':'));
    return {o.kind, where_of(file, node)};
  }

  [[noreturn]] static void unknown(const std::string& key, const Origin& origin) {
    const std::string hint = nearest_key(key);
    config_error("{}: unknown key '{}'{}", origin.where, key,
                 hint.empty() ? std::string(" (see docs/config.md for the keys gym knows)")
                              : " (did you mean '" + hint + "'?)");
  }

  // Axolotl / TRL spellings of gym's keys. Returns true when the key was handled.
  bool apply_alias(const std::string& key, const YAML::Node& value, const Origin& origin) {
    if (const ForeignKey* f = find_foreign_key(key); f && f->use == ForeignUse::Renamed) return add(f->target, value, origin), true;
    const bool truthy = value.IsScalar() && (value.Scalar() == "true" || value.Scalar() == "True");
    if (key == "load_in_4bit") {
      if (truthy) add("quantization_bit", YAML::Node("4"), origin);
      return true;
    }
    if (key == "load_in_8bit") {
      if (truthy) add("quantization_bit", YAML::Node("8"), origin);
      return true;
    }
    if (key == "lora_target_linear") {
      if (truthy) add("lora_target", YAML::Node("all"), origin);
      return true;
    }
    if (key == "disable_gradient_checkpointing") {
      if (truthy) add("gradient_checkpointing", YAML::Node("false"), origin);
      return true;
    }
    if (key == "save_strategy") {   // HF: steps | no | epoch | best
      const std::string v = value.IsScalar() ? value.Scalar() : "";
      if (v == "no") add("save_steps", YAML::Node(std::to_string(std::numeric_limits<int32_t>::max())), origin);
      else if (v != "steps")
        config_error("{}: key 'save_strategy' is '{}': gym saves every save_steps ('steps') or not during training ('no'); "
                     "'epoch' and 'best' are not implemented", origin.where, v);
      return true;
    }
    if (key == "adapter") {  // Axolotl: adapter: lora | qlora
      const std::string a = value.IsScalar() ? value.Scalar() : "";
      if (a != "lora" && a != "qlora") config_error("{}: key 'adapter' expects lora or qlora, got '{}'", origin.where, a);
      add("finetuning_type", YAML::Node("lora"), origin);
      return true;
    }
    if (key == "rl") {  // Axolotl: rl: grpo (+ a trl: block)
      add("stage", value, origin);
      return true;
    }
    return false;
  }

  void read_file(const std::filesystem::path& path, std::vector<std::filesystem::path>& stack) {
    const auto canon = std::filesystem::weakly_canonical(path);
    if (std::find(stack.begin(), stack.end(), canon) != stack.end()) {
      std::string chain;
      for (const auto& p : stack) chain += p.string() + " → ";
      config_error("extends cycle: {}{}", chain, canon.string());
    }
    if (!std::filesystem::exists(path)) {
      if (stack.empty()) config_error("config file '{}' does not exist", path.string());
      config_error("{}: extends '{}', which does not exist", stack.back().string(), path.string());
    }
    YAML::Node root;
    try {
      root = YAML::Load(gym::read_file(path));   // read_file refuses FIFOs, devices and huge files
    } catch (const YAML::Exception& e) {
      config_error("{}:{}:{}: invalid YAML: {}", path.string(), e.mark.line + 1, e.mark.column + 1, e.msg);
    }
    if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
    if (!root.IsMap()) config_error("{}: a config file must be a mapping of key: value", path.string());
    stack.push_back(canon);
    if (root["extends"]) {
      const YAML::Node ext = root["extends"];
      std::vector<std::string> parents;
      if (ext.IsScalar()) parents.push_back(ext.Scalar());
      else if (ext.IsSequence()) for (const auto& p : ext) parents.push_back(p.Scalar());
      else config_error("{}: 'extends' expects a file name or a list of them", where_of(path.string(), ext));
      for (const auto& p : parents) read_file(path.parent_path() / p, stack);
    }
    stack.pop_back();
    files.push_back(path);
    for (const auto& kv : root) {
      const std::string key = kv.first.Scalar();
      if (key == "extends") continue;
      add(key, kv.second, Origin{"file", where_of(path.string(), kv.first)});
    }
  }

  // `--k v`, `--k=v`, `k=v`, bare `--flag` (= true), dotted keys.
  void read_overrides(const std::vector<std::string>& args) {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      std::string key, text;
      if (a.rfind("--", 0) == 0) {
        std::string body = a.substr(2);
        if (auto eq = body.find('='); eq != std::string::npos) {
          key = body.substr(0, eq), text = body.substr(eq + 1);
        } else {
          key = body;
          if (i + 1 < args.size() && !looks_like_key(args[i + 1])) text = args[++i];
          else text = "true";
        }
      } else if (auto eq = a.find('='); eq != std::string::npos) {
        key = a.substr(0, eq), text = a.substr(eq + 1);
      } else {
        config_error("unexpected argument '{}': overrides are written --key value, --key=value or key=value", a);
      }
      if (key.empty()) config_error("override '{}' has no key", a);
      YAML::Node value;
      try {
        value = YAML::Load(text);
        if (value.IsMap()) value = YAML::Node(text);   // "a: b" as a plain string
      } catch (const YAML::Exception&) {
        value = YAML::Node(text);
      }
      if (text.empty()) value = YAML::Node("");
      add(key, value, Origin{"override", a});
    }
  }

  static bool looks_like_key(const std::string& s) {
    if (s.rfind("--", 0) == 0) return true;
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) return false;
    std::string k = s.substr(0, eq);
    std::replace(k.begin(), k.end(), '-', '_');
    if (auto dot = k.find('.'); dot != std::string::npos && is_group_name(k.substr(0, dot))) k = k.substr(dot + 1);
    return find_key(k) || find_foreign_key(k);
  }
};

// A path in a config resolves against the working directory, then the config file's folder,
// then gym's source folder (where configs/ and data/ ship).
std::string resolve_path(const std::string& p, const std::vector<std::filesystem::path>& files) {
  namespace fs = std::filesystem;
  if (p.empty() || fs::path(p).is_absolute() || fs::exists(p)) return p;
  for (auto it = files.rbegin(); it != files.rend(); ++it)
    if (fs::exists(it->parent_path() / p)) return (it->parent_path() / p).string();
  if (fs::exists(source_dir() / p)) return (source_dir() / p).string();
  return p;
}

ResolvedConfig finish(Reader& r) {
  ResolvedConfig out;
  std::vector<std::string> warnings;
  if (!r.foreign.empty()) {
    std::string list;
    for (const auto& k : r.foreign) list += (list.empty() ? "" : ", ") + k;
    warnings.push_back("keys accepted for compatibility but not used by gym: " + list);
  }
  r.values.resolve_defaults();
  const std::string ds = r.values.get_string("deepspeed");
  int64_t zero_stage = 0;
  if (!ds.empty()) {
    const std::string path = resolve_path(ds, r.files);
    r.values.set("deepspeed", YAML::Node(path), r.values.get("deepspeed").origin);
    zero_stage = apply_deepspeed(path, r.values, warnings);
  }
  if (const std::string ws = r.values.get_string("adapter_warm_start"); !ws.empty())
    r.values.set("adapter_warm_start", YAML::Node(resolve_path(ws, r.files)), r.values.get("adapter_warm_start").origin);
  const std::string dir = r.values.get_string("dataset_dir");
  r.values.set("dataset_dir", YAML::Node(resolve_path(dir, r.files)), r.values.get("dataset_dir").origin);
  out.config = build_config(r.values, warnings);
  out.config.dist.zero_stage = zero_stage;
  for (const auto& [k, e] : r.values.entries()) {
    YAML::Emitter em;
    em << YAML::Flow << e.value;
    out.values[k] = em.c_str();
    out.origins[k] = e.origin;
  }
  for (const auto& w : warnings) spdlog::warn("{}", w);
  out.warnings = std::move(warnings);
  out.files = r.files;
  return out;
}

}  // namespace

// A YAML value the reader converts (as<T>) or a path the OS refuses to look at (a name too long)
// is one config error naming the file, as in every other reader of user files (core/json.h).
template <typename F>
ResolvedConfig guarded(const std::string& source, F&& load) {
  try {
    return json_reader(source, load);
  } catch (const YAML::Exception& e) {
    config_error("{}: {}", source, e.msg);
  }
}

ResolvedConfig load_config(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  return guarded(file.string(), [&] {
    Reader r;
    std::vector<std::filesystem::path> stack;
    r.read_file(file, stack);
    r.read_overrides(overrides);
    return finish(r);
  });
}

ResolvedConfig load_config_from_string(const std::string& yaml, const std::vector<std::string>& overrides,
                                       const std::filesystem::path& pretend_path) {
  return guarded(pretend_path.string(), [&] {
    Reader r;
    YAML::Node root;
    try {
      root = YAML::Load(yaml);
    } catch (const YAML::Exception& e) {
      config_error("{}:{}:{}: invalid YAML: {}", pretend_path.string(), e.mark.line + 1, e.mark.column + 1, e.msg);
    }
    if (root.IsMap())
      for (const auto& kv : root) r.add(kv.first.Scalar(), kv.second, Origin{"file", where_of(pretend_path.string(), kv.first)});
    r.read_overrides(overrides);
    return finish(r);
  });
}

}  // namespace gym::config
