// Printing the resolved config (with origins) and the generated key reference.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "config/foreign_keys.h"
#include "config/schema.h"
#include "gym/config/config.h"

namespace gym::config {

namespace {

std::string section_title(const std::string& s) { return "### " + s; }

std::string origin_text(const Origin& o) {
  if (o.kind == "default") return o.where.empty() ? "default" : "default (" + o.where + ")";
  if (o.kind == "file") return "file " + o.where;
  if (o.kind == "override") return "override " + o.where;
  return o.kind + " (" + o.where + ")";
}

template <typename Line>
std::string emit(const ResolvedConfig& rc, Line&& line) {
  std::string out, section;
  for (const auto& def : key_table()) {
    if (def.section != section) {
      section = def.section;
      out += (out.empty() ? "" : "\n") + section_title(section) + "\n";
    }
    auto v = rc.values.find(def.name);
    auto o = rc.origins.find(def.name);
    if (v == rc.values.end()) continue;
    out += line(def.name, v->second, o == rc.origins.end() ? Origin{"default", ""} : o->second);
  }
  return out;
}

}  // namespace

std::string ResolvedConfig::to_yaml_with_origins() const {
  return emit(*this, [](const std::string& k, const std::string& v, const Origin& o) {
    std::string kv = k + ": " + v;
    return fmt::format("{:<56} # {}\n", kv, origin_text(o));
  });
}

std::string ResolvedConfig::to_yaml() const {
  return emit(*this, [](const std::string& k, const std::string& v, const Origin&) { return k + ": " + v + "\n"; });
}

std::string config_reference_markdown() {
  std::string out =
      "# Configuration reference\n\n"
      "Generated from the key table in `src/config/schema.cpp` (`gym config-doc > docs/config.md`); a test "
      "fails when this file is stale.\n\n"
      "Values come from defaults, then the YAML file (and the files it `extends:`), then command-line "
      "overrides (`--key value`, `--key=value`, `key=value`, dotted `trl.beta=0.04`). `gym validate` prints "
      "each value's origin. Numbers such as `1e-5` are floats. Keys of LLaMA-Factory, HF "
      "TrainingArguments, TRL and Axolotl outside this table are handled as the survey at the end says "
      "(renamed, implemented, warned, or refused when ignoring the value would change the results); any "
      "other unknown key is an error with a \"did you mean\".\n\n"
      "Stage defaults: `stage: gspo` sets importance_sampling_level sequence, epsilon 3e-4, epsilon_high 4e-4, "
      "beta 0, loss_type grpo, learning_rate 1e-6 (the GSPO paper recipe's loss; its other half, steps_per_generation 4 "
      "with gradient_accumulation_steps 1, is set in the presets' gspo configs, not by the stage); `stage: grpo` sets "
      "token level and learning_rate 1e-6 (TRL).\n\n"
      "Defaults that differ from the projects users come from: logging_steps 10 (HF 500; LLaMA-Factory's examples use "
      "10), max_new_tokens 512 (LLaMA-Factory 1024), bf16 false for every stage (TRL's GRPOConfig turns it on; gym's "
      "default device is a CPU), do_train true (HF false; gym train trains). The logged lr is the rate the step "
      "used (HF logs the next step's, so its first warm-up line shows one step later). A run ends with its final "
      "outputs in output_dir and no extra checkpoint-N for the last step (HF writes one when save_strategy is steps).\n";
  std::string section;
  for (const auto& def : key_table()) {
    if (def.section != section) {
      section = def.section;
      out += "\n## " + section + "\n\n| key | type | default | meaning |\n|---|---|---|---|\n";
    }
    out += fmt::format("| `{}` | {} | `{}` | {} |\n", def.name, type_name(def.type), def.default_value, def.help);
  }
  out += "\n## Keys of other projects\n\n"
         "The survey (`src/config/foreign_keys.cpp`): keys of LLaMA-Factory, HF TrainingArguments, TRL and Axolotl "
         "that are not gym keys. *renamed*: the same meaning under gym's name; *implemented*: a rule of the "
         "loader; *warned*: accepted and unused, listed in one warning (speed, memory, logging, hub or "
         "environment settings); *refused unless off*: accepted with the warning while off, null or empty "
         "(or one of the values named), otherwise a config error, because ignoring the value would change "
         "what is computed. A test loads every row as the table says.\n\n"
         "| key | project | gym | note |\n|---|---|---|---|\n";
  for (const auto& k : foreign_keys())
    out += fmt::format("| `{}` | {} | {} | {} |\n", k.name, k.source, foreign_use_text(k), k.note);
  return out;
}

}  // namespace gym::config
