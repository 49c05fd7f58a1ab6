// The survey of other projects' keys (docs/config.md, "Keys of other projects"): every row behaves
// as the table says — renamed keys set gym's key, implemented rules apply, warned keys are listed
// in the warning, guarded keys are accepted while off and refused (exit 2, naming key and
// project) with a value that would change the results.
#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <string>

#include "config/foreign_keys.h"
#include "gym/config/config.h"
#include "gym/core/error.h"

using namespace gym;
using config::ForeignUse;

namespace {

const std::string kBase = "model_name_or_path: some/model\nstage: sft\n";

config::ResolvedConfig load(const std::string& key, const std::string& value) {
  return config::load_config_from_string(kBase + key + ": " + value + "\n", {}, "survey.yaml");
}

std::string error_of(const std::string& key, const std::string& value) {
  try {
    load(key, value);
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2) << e.what();
    return e.what();
  }
  return "";
}

bool warned(const config::ResolvedConfig& rc, const std::string& key) {
  for (const auto& w : rc.warnings)
    if (w.find("not used by gym") != std::string::npos && w.find(key) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(ConfigSurvey, EveryRowBehavesAsTheTableSays) {
  // A value valid for each renamed key's target.
  const std::map<std::string, std::string> renamed_values = {
      {"model_name_or_path", "other/model"}, {"per_device_train_batch_size", "3"}, {"num_train_epochs", "2"},
      {"lr_scheduler_type", "linear"},       {"cutoff_len", "77"},                 {"lora_rank", "4"},
      {"val_size", "0.25"},                  {"template", "qwen3"},                {"eval_strategy", "no"},
      {"learning_rate", "0.125"},            {"beta", "0.5"},                      {"max_prompt_length", "33"},
      {"quantization_blocksize", "128"},     {"double_quantization", "false"},     {"quantization_type", "fp4"},
      {"router_aux_loss_coef", "0.25"},      {"train_on_prompt", "true"},          {"additional_target", "[lm_head]"},
      {"lora_target", "[q_proj, v_proj]"}};
  int rows = 0;
  for (const auto& k : config::foreign_keys()) {
    SCOPED_TRACE(k.name);
    ++rows;
    EXPECT_TRUE(std::string(k.source).find("LLaMA-Factory") != std::string::npos || std::string(k.source).find("HF") != std::string::npos ||
                std::string(k.source).find("TRL") != std::string::npos || std::string(k.source).find("Axolotl") != std::string::npos);
    switch (k.use) {
      case ForeignUse::Renamed: {
        ASSERT_TRUE(renamed_values.count(k.target)) << k.target;
        const std::string v = renamed_values.at(k.target);
        const auto rc = load(k.name, v);
        EXPECT_EQ(rc.values.at(k.target), v);
        EXPECT_FALSE(warned(rc, k.name));
        break;
      }
      case ForeignUse::Implemented:
        break;   // each rule is checked below
      case ForeignUse::Warned: {
        const auto rc = load(k.name, "something");
        EXPECT_TRUE(warned(rc, k.name));
        break;
      }
      case ForeignUse::Guarded: {
        for (const char* off : {"null", "false", "\"\"", "[]"}) EXPECT_TRUE(warned(load(k.name, off), k.name)) << off;
        const std::string harmless = k.target;
        for (size_t start = 0; !harmless.empty();) {
          const size_t bar = harmless.find('|', start);
          const std::string v = harmless.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
          EXPECT_TRUE(warned(load(k.name, v), k.name)) << v;
          if (bar == std::string::npos) break;
          start = bar + 1;
        }
        for (const char* bad : {"true", "adamw_8bit", "[x]", "{type: yarn, factor: 4.0}"}) {
          const std::string e = error_of(k.name, bad);
          EXPECT_NE(e.find(std::string("key '") + k.name + "' (" + k.source + ")"), std::string::npos) << bad << ": " << e;
          EXPECT_NE(e.find("would change the results"), std::string::npos) << e;
          EXPECT_NE(e.find("survey.yaml"), std::string::npos) << e;
        }
        break;
      }
    }
  }
  EXPECT_GT(rows, 100);
  // The implemented rules.
  EXPECT_EQ(load("load_in_4bit", "true").config.quant.bits, 4);
  EXPECT_NE(error_of("load_in_8bit", "true").find("quantization_bit 8 is not supported"), std::string::npos);
  EXPECT_EQ(load("lora_target_linear", "true").values.at("lora_target"), "[all]");
  EXPECT_EQ(load("adapter", "qlora").values.at("finetuning_type"), "lora");
  EXPECT_NE(error_of("adapter", "prefix").find("key 'adapter'"), std::string::npos);
  EXPECT_EQ(load("rl", "gspo").values.at("stage"), "gspo");
  EXPECT_FALSE(load("disable_gradient_checkpointing", "true").config.training.gradient_checkpointing);
  EXPECT_TRUE(load("disable_gradient_checkpointing", "false").config.training.gradient_checkpointing);
  EXPECT_EQ(load("save_strategy", "no").config.output.save_steps, std::numeric_limits<int32_t>::max());
  EXPECT_EQ(load("save_strategy", "steps").config.output.save_steps, 500);
  for (const char* v : {"epoch", "best"}) EXPECT_NE(error_of("save_strategy", v).find("'epoch' and 'best' are not implemented"), std::string::npos);
  // validate and train share the loader: what train refuses, validate refuses (ConfigCli checks the CLI).
  EXPECT_NE(error_of("optim", "paged_adamw_8bit").find("float32 states"), std::string::npos);
  EXPECT_NE(error_of("datasets", "[{path: data.jsonl, type: alpaca}]").find("dataset_dir"), std::string::npos);
}

TEST(ConfigSurvey, TheConfigReferenceCarriesTheTable) {
  const std::string doc = config::config_reference_markdown();
  EXPECT_NE(doc.find("## Keys of other projects"), std::string::npos);
  for (const auto& k : config::foreign_keys())
    EXPECT_NE(doc.find(std::string("| `") + k.name + "` | " + k.source + " | " + config::foreign_use_text(k)), std::string::npos) << k.name;
}
