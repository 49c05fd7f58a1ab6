#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "gym/config/config.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"

namespace fs = std::filesystem;
using gym::config::load_config;
using gym::config::load_config_from_string;

namespace {

const fs::path kData = fs::path(GYM_TEST_DATA) / "config";

fs::path write_tmp(const std::string& name, const std::string& text) {
  fs::path dir = fs::temp_directory_path() / "gym_config_test";
  fs::create_directories(dir);
  std::ofstream(dir / name) << text;
  return dir / name;
}

// Expects a config error whose message contains every fragment.
template <typename F>
void expect_config_error(F&& f, std::initializer_list<const char*> fragments) {
  try {
    f();
    FAIL() << "expected a config error";
  } catch (const gym::Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    for (const char* frag : fragments) EXPECT_NE(msg.find(frag), std::string::npos) << "'" << frag << "' not in: " << msg;
  }
}

}  // namespace

TEST(Config, DefaultsFollowLlamaFactoryAndTrl) {
  auto rc = load_config_from_string("model_name_or_path: m\n", {});
  const auto& c = rc.config;
  EXPECT_EQ(c.training.stage, "sft");
  EXPECT_EQ(c.lora.rank, 8);
  EXPECT_DOUBLE_EQ(c.lora.alpha, 16.0);  // 2 × rank
  EXPECT_EQ(c.lora.target, std::vector<std::string>{"all"});
  EXPECT_DOUBLE_EQ(c.training.learning_rate, 5e-5);
  EXPECT_EQ(c.data.cutoff_len, 2048);
  EXPECT_EQ(c.rl.loss_type, "dapo");
  EXPECT_EQ(rc.origins.at("lora_rank").kind, "default");
  EXPECT_EQ(rc.origins.at("lora_alpha").kind, "derived");
}

TEST(Config, GspoStageDefaultsToThePaperRecipe) {
  auto gspo = load_config_from_string("model_name_or_path: m\nstage: gspo\nnum_generations: 4\nper_device_train_batch_size: 4\n", {}).config;
  EXPECT_EQ(gspo.rl.importance_sampling_level, "sequence");
  EXPECT_DOUBLE_EQ(gspo.rl.epsilon, 3e-4);
  EXPECT_DOUBLE_EQ(gspo.rl.epsilon_high, 4e-4);
  EXPECT_DOUBLE_EQ(gspo.rl.beta, 0.0);
  auto grpo = load_config_from_string("model_name_or_path: m\nstage: grpo\nnum_generations: 4\nper_device_train_batch_size: 4\n", {}).config;
  EXPECT_EQ(grpo.rl.importance_sampling_level, "token");
  EXPECT_DOUBLE_EQ(grpo.rl.epsilon, 0.2);
  EXPECT_DOUBLE_EQ(grpo.rl.epsilon_high, 0.2);  // defaults to epsilon
}

TEST(Config, EveryOverrideForm) {
  const std::string base = "model_name_or_path: m\n";
  auto c = load_config_from_string(base, {"--per_device_train_batch_size", "2"}).config;
  EXPECT_EQ(c.training.per_device_train_batch_size, 2);
  c = load_config_from_string(base, {"--learning_rate=1e-5"}).config;
  EXPECT_DOUBLE_EQ(c.training.learning_rate, 1e-5);  // a float, not a string
  c = load_config_from_string(base, {"lora_rank=32"}).config;
  EXPECT_EQ(c.lora.rank, 32);
  c = load_config_from_string(base, {"trl.beta=0.04", "--trl.epsilon", "0.3"}).config;
  EXPECT_DOUBLE_EQ(c.rl.beta, 0.04);
  EXPECT_DOUBLE_EQ(c.rl.epsilon, 0.3);
  c = load_config_from_string(base, {"--quantization_bit", "4", "--load_in_4bit", "true"}).config;
  EXPECT_EQ(c.quant.bits, 4);
  c = load_config_from_string(base, {"--dataset", "a,b", "--dataset_dir", "/tmp"}).config;
  EXPECT_EQ(c.data.dataset, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.data.dataset_dir, "/tmp");
  c = load_config_from_string(base, {"--bf16", "--plot_loss"}).config;  // bare flags mean true
  EXPECT_TRUE(c.training.bf16);
  EXPECT_TRUE(c.output.plot_loss);
  c = load_config_from_string(base, {"--lora-dropout", "0.1"}).config;  // kebab-case
  EXPECT_DOUBLE_EQ(c.lora.dropout, 0.1);
  auto rc = load_config_from_string(base, {"--lora_rank", "4"});
  EXPECT_EQ(rc.origins.at("lora_rank").kind, "override");
  c = load_config_from_string(base, {"--deepspeed", (kData / "deepspeed__ds_z3_config.json").string()}).config;
  EXPECT_EQ(c.dist.zero_stage, 3);
}

TEST(Config, FileValuesBeatDefaultsAndOverridesBeatFiles) {
  auto f = write_tmp("prec.yaml", "model_name_or_path: m\nlora_rank: 4\nlearning_rate: 2e-5\n");
  auto rc = load_config(f, {"lora_rank=12"});
  EXPECT_EQ(rc.config.lora.rank, 12);
  EXPECT_DOUBLE_EQ(rc.config.training.learning_rate, 2e-5);
  EXPECT_EQ(rc.origins.at("learning_rate").kind, "file");
  EXPECT_NE(rc.origins.at("learning_rate").where.find("prec.yaml:3"), std::string::npos);
}

TEST(Config, AxolotlAliases) {
  auto c = load_config_from_string(
               "base_model: m\nmicro_batch_size: 3\nnum_epochs: 2\nlr_scheduler: cosine\nsequence_len: 512\n"
               "lora_r: 32\nload_in_4bit: true\nadapter: qlora\nval_set_size: 0.1\nchat_template: qwen3_nothink\n"
               "lora_target_linear: true\n",
               {})
               .config;
  EXPECT_EQ(c.model.model_name_or_path, "m");
  EXPECT_EQ(c.training.per_device_train_batch_size, 3);
  EXPECT_DOUBLE_EQ(c.training.num_train_epochs, 2);
  EXPECT_EQ(c.training.lr_scheduler_type, "cosine");
  EXPECT_EQ(c.data.cutoff_len, 512);
  EXPECT_EQ(c.lora.rank, 32);
  EXPECT_EQ(c.quant.bits, 4);
  EXPECT_DOUBLE_EQ(c.data.val_size, 0.1);
  EXPECT_EQ(c.model.template_name, "qwen3_nothink");
  auto rl = load_config_from_string("base_model: m\nrl: grpo\nmicro_batch_size: 4\ntrl:\n  num_generations: 4\n  beta: 0.01\n", {}).config;
  EXPECT_EQ(rl.training.stage, "grpo");
  EXPECT_EQ(rl.rl.num_generations, 4);
  EXPECT_DOUBLE_EQ(rl.rl.beta, 0.01);
}

TEST(Config, ExtendsInheritsAndChildWins) {
  write_tmp("parent.yaml", "model_name_or_path: m\nlora_rank: 4\ncutoff_len: 100\n");
  auto child = write_tmp("child.yaml", "extends: parent.yaml\ncutoff_len: 200\n");
  auto c = load_config(child, {}).config;
  EXPECT_EQ(c.lora.rank, 4);
  EXPECT_EQ(c.data.cutoff_len, 200);
}

TEST(Config, BadConfigsGiveOneClearLine) {
  // unknown key with a suggestion, naming file and line
  auto f = write_tmp("typo.yaml", "model_name_or_path: m\nlora_rnak: 8\n");
  expect_config_error([&] { load_config(f, {}); }, {"typo.yaml:2", "unknown key 'lora_rnak'", "did you mean 'lora_rank'"});
  // wrong type
  f = write_tmp("type.yaml", "model_name_or_path: m\nlora_rank: eight\n");
  expect_config_error([&] { load_config(f, {}); }, {"type.yaml:2", "lora_rank", "expects int", "'eight'"});
  // invalid YAML
  f = write_tmp("bad.yaml", "model_name_or_path: m\nlora_rank: [1, 2\n");
  expect_config_error([&] { load_config(f, {}); }, {"bad.yaml", "invalid YAML"});
  // missing file
  expect_config_error([&] { load_config("/nonexistent/x.yaml", {}); }, {"/nonexistent/x.yaml", "does not exist"});
  // extends cycle
  write_tmp("cyc_a.yaml", "extends: cyc_b.yaml\nmodel_name_or_path: m\n");
  f = write_tmp("cyc_b.yaml", "extends: cyc_a.yaml\n");
  expect_config_error([&] { load_config(f, {}); }, {"extends cycle", "cyc_a.yaml", "cyc_b.yaml"});
  // DeepSpeed conflict
  auto ds = write_tmp("ds.json", R"({"train_micro_batch_size_per_gpu": 4, "zero_optimization": {"stage": 2}})");
  expect_config_error([&] { load_config_from_string("model_name_or_path: m\nper_device_train_batch_size: 2\n", {"--deepspeed", ds.string()}); },
                      {"ds.json", "train_micro_batch_size_per_gpu", "per_device_train_batch_size", "auto"});
  // cross-field checks
  expect_config_error([&] { load_config_from_string("model_name_or_path: m\nstage: grpo\nnum_generations: 8\nper_device_train_batch_size: 6\n", {}); },
                      {"divisible by num_generations 8"});
  expect_config_error([&] { load_config_from_string("model_name_or_path: m\nfinetuning_type: full\nlora_rank: 4\n", {}); },
                      {"lora_rank", "finetuning_type is full"});
  expect_config_error([&] { load_config_from_string("model_name_or_path: m\nreward_funcs: accuracy,format\nreward_weights: [1.0]\n", {}); },
                      {"reward_weights has 1 values but reward_funcs has 2"});
  expect_config_error([&] { load_config_from_string("model_name_or_path: m\nper_device_train_batch_size: 0\n", {}); },
                      {"per_device_train_batch_size", "positive"});
  expect_config_error([&] { load_config_from_string("model_name_or_path: m\nstage: gspo\nepsilon: -0.1\nnum_generations: 2\nper_device_train_batch_size: 2\n", {}); },
                      {"epsilon", "positive"});
  // override errors
  expect_config_error([&] { load_config_from_string("model_name_or_path: m\n", {"--lora_rnak", "3"}); }, {"unknown key 'lora_rnak'", "did you mean 'lora_rank'"});
  expect_config_error([&] { load_config_from_string("model_name_or_path: m\n", {"stray"}); }, {"unexpected argument 'stray'"});
}

TEST(Config, DeepSpeedAutoResolvesAndExplicitValuesAreAdopted) {
  auto ds = write_tmp("ds_ok.json", R"({"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": 4,
      "gradient_clipping": 0.5, "bf16": {"enabled": "auto"}, "zero_optimization": {"stage": 2}})");
  auto rc = load_config_from_string("model_name_or_path: m\nper_device_train_batch_size: 2\n", {"--deepspeed", ds.string()});
  EXPECT_EQ(rc.config.training.per_device_train_batch_size, 2);
  EXPECT_EQ(rc.config.training.gradient_accumulation_steps, 4);  // adopted: gym value was a default
  EXPECT_DOUBLE_EQ(rc.config.training.max_grad_norm, 0.5);
  EXPECT_EQ(rc.config.dist.zero_stage, 2);
  EXPECT_EQ(rc.origins.at("gradient_accumulation_steps").kind, "deepspeed");
}

TEST(Config, LlamaFactoryExamplesValidateUnchanged) {
  const fs::path ds3 = kData / "deepspeed__ds_z3_config.json";
  for (const char* name : {"train_lora__qwen3_lora_sft.yaml", "train_full__qwen3_full_sft.yaml",
                           "train_qlora__qwen3_lora_sft_otfq.yaml", "train_lora__qwen3_lora_sft_ds3.yaml",
                           "inference__qwen3_lora_sft.yaml"}) {
    SCOPED_TRACE(name);
    std::vector<std::string> overrides;
    if (std::string(name).find("ds3") != std::string::npos || std::string(name).find("full") != std::string::npos)
      overrides = {"--deepspeed", ds3.string()};
    auto rc = load_config(kData / name, overrides);
    EXPECT_EQ(rc.config.model.model_name_or_path, "Qwen/Qwen3-4B-Instruct-2507");
    bool warned = false;
    for (const auto& w : rc.warnings) warned |= w.find("trust_remote_code") != std::string::npos;
    EXPECT_TRUE(warned);
  }
  auto qlora = load_config(kData / "train_qlora__qwen3_lora_sft_otfq.yaml", {}).config;
  EXPECT_EQ(qlora.quant.bits, 4);
  EXPECT_EQ(qlora.training.gradient_accumulation_steps, 8);
}

TEST(Config, EveryShippedConfigValidates) {
  const fs::path root = gym::source_dir();
  int n = 0;
  for (const auto& dir : {root / "configs", root / "configs" / "tiny"}) {
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() != ".yaml") continue;
      SCOPED_TRACE(e.path().string());
      EXPECT_NO_THROW(load_config(e.path(), {}));
      ++n;
    }
  }
  for (const char* preset : {"nano", "eco", "coder", "omni", "next"}) {
    for (const char* cfg : {"gspo_training.yaml", "grpo_training.yaml", "sft_training.yaml", "inference.yaml"}) {
      SCOPED_TRACE(std::string(preset) + "/" + cfg);
      EXPECT_NO_THROW(load_config(root / "models" / preset / "configs" / cfg, {}));
      ++n;
    }
  }
  EXPECT_GE(n, 29);
}

TEST(Config, ResolvedYamlRoundTrips) {
  auto rc = load_config(gym::source_dir() / "configs" / "tiny" / "gspo_tiny.yaml", {"--lora_rank", "4"});
  auto again = load_config_from_string(rc.to_yaml(), {});
  EXPECT_EQ(again.values, rc.values);
}

TEST(Config, DocIsGeneratedFromTheTable) {
  const fs::path doc = gym::source_dir() / "docs" / "config.md";
  ASSERT_TRUE(fs::exists(doc)) << "run: gym config-doc > docs/config.md";
  EXPECT_EQ(gym::read_file(doc), gym::config::config_reference_markdown())
      << "docs/config.md is stale: run `./build/gym config-doc > docs/config.md`";
}

TEST(ConfigCli, ValidateExitCodesAndOrigins) {
  auto ok = gym::test::run_gym("validate " + (gym::source_dir() / "configs/tiny/sft_tiny.yaml").string() + " --lora_rank 4");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("lora_rank: 4"), std::string::npos);
  EXPECT_NE(ok.output.find("# override --lora_rank"), std::string::npos);
  EXPECT_NE(ok.output.find("# default"), std::string::npos);
  EXPECT_NE(ok.output.find("sft_tiny.yaml:"), std::string::npos);

  auto f = write_tmp("cli_typo.yaml", "model_name_or_path: m\nlearning_rat: 1e-4\n");
  auto bad = gym::test::run_gym("validate " + f.string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(gym::test::count_error_lines(bad.output), 1) << bad.output;
  EXPECT_NE(bad.output.find("did you mean 'learning_rate'"), std::string::npos);

  auto missing = gym::test::run_gym("validate /nonexistent.yaml");
  EXPECT_EQ(missing.exit_code, 2);
  auto usage = gym::test::run_gym("validate");
  EXPECT_EQ(usage.exit_code, 2);
  auto version = gym::test::run_gym("--version");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.output.find("gym "), std::string::npos);
  EXPECT_NE(version.output.find("CUDA kernels: "), std::string::npos) << version.output;
}
