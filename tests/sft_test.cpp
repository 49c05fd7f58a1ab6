// End-to-end SFT on the tiny config: learning, outputs, adapter round trip, export, kill-and-resume.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "test_util.h"
#include "gym/core/fs.h"
#include "gym/io/safetensors.h"
#include "gym/lora/adapter.h"
#include "gym/model/loader.h"
#include "gym/model/score.h"
#include "gym/recipes/model_setup.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {
const std::string kConfig = (source_dir() / "configs" / "tiny" / "sft_tiny.yaml").string();

fs::path tests_tiny_model() {
  config::ModelArgs a;
  a.model_name_or_path = "tiny-qwen3";
  a.create_model_preset = "tiny";
  return recipes::resolve_or_create_model(a);
}

fs::path out_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("gym_sft_" + name);
  fs::remove_all(d);
  return d;
}

std::vector<nlohmann::json> read_log(const fs::path& dir) { return test::read_log(dir); }
}  // namespace

TEST(Sft, TinyRunLearnsAndWritesEveryOutput) {
  const auto out = out_dir("learn");
  auto r = test::run_gym("train " + kConfig + " --output_dir " + out.string() + " --max_steps 120 --save_steps 40 --logging_steps 10");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto log = read_log(out);
  ASSERT_EQ(log.size(), 12u);
  const double first = log.front()["loss"].get<double>(), last = log.back()["loss"].get<double>();
  // ln(265) = 5.58 is a uniform guess over the byte vocabulary; the run must get well below it.
  EXPECT_LT(last, 3.0) << "first " << first;
  EXPECT_LT(last, first);
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors", "trainer_state.json", "all_results.json",
                        "train_results.json", "gym_config.yaml", "training_loss.svg"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  auto state = nlohmann::json::parse(read_file(out / "trainer_state.json"));
  EXPECT_EQ(state["global_step"], 120);
  EXPECT_EQ(state["log_history"].size(), 12u);
  auto results = nlohmann::json::parse(read_file(out / "all_results.json"));
  EXPECT_GT(results["train_runtime"].get<double>(), 0.0);
  auto cfg = nlohmann::json::parse(read_file(out / "adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 32);
  EXPECT_TRUE(fs::exists(out / "checkpoint-80" / "optimizer.pt"));
  EXPECT_TRUE(fs::exists(out / "checkpoint-40" / "rng_state.pt"));
  // the resolved config re-validates
  EXPECT_EQ(test::run_gym("validate " + (out / "gym_config.yaml").string()).exit_code, 0);
  // PEFT names
  std::string st = read_file(out / "adapter_model.safetensors");
  EXPECT_NE(st.find("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), std::string::npos);

  // adapter round trip (score with --adapter) and export (merged checkpoint) agree
  const fs::path base = cache_dir() / "models" / "tiny-qwen3";
  std::ofstream(out / "in.json") << R"({"input_ids": [[257, 117, 115, 101, 114, 10, 51, 43, 52, 61]], "attention_mask": [[1,1,1,1,1,1,1,1,1,1]]})";
  r = test::run_gym("score --model " + base.string() + " --adapter " + out.string() + " --input " + (out / "in.json").string() +
                    " --output " + (out / "a.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_gym("export --model " + base.string() + " --adapter " + out.string() + " --out " + (out / "merged").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_gym("score --model " + (out / "merged").string() + " --input " + (out / "in.json").string() + " --output " +
                    (out / "b.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_gym("score --model " + base.string() + " --input " + (out / "in.json").string() + " --output " + (out / "c.json").string());
  auto a = nlohmann::json::parse(read_file(out / "a.json")), b = nlohmann::json::parse(read_file(out / "b.json")),
       c = nlohmann::json::parse(read_file(out / "c.json"));
  EXPECT_NEAR(a["loss"].get<double>(), b["loss"].get<double>(), 1e-5);
  EXPECT_GT(std::abs(a["loss"].get<double>() - c["loss"].get<double>()), 1e-3);   // the adapter changes the model
  for (size_t t = 0; t < a["logits"][0].size(); ++t)
    for (size_t v = 0; v < 512; v += 37)
      EXPECT_NEAR(a["logits"][0][t][v].get<double>(), b["logits"][0][t][v].get<double>(), 1e-4);
}

TEST(Sft, KilledRunResumesBitIdentical) {
  const auto full = out_dir("full"), killed = out_dir("killed");
  const std::string common = " --max_steps 12 --save_steps 4 --logging_steps 1 --overwrite_output_dir false --lora_dropout 0.1";
  auto r = test::run_gym("train " + kConfig + " --output_dir " + full.string() + common);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // SIGKILL right after step 6: checkpoint-4 is complete, step 5-6 are lost.
  setenv("GYM_TEST_SIGKILL_AFTER_STEP", "6", 1);
  r = test::run_gym("train " + kConfig + " --output_dir " + killed.string() + common);
  unsetenv("GYM_TEST_SIGKILL_AFTER_STEP");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(fs::exists(killed / "checkpoint-4" / "trainer_state.json"));
  EXPECT_FALSE(fs::exists(killed / "adapter_model.safetensors"));
  // Rerunning the same command resumes from checkpoint-4 (LLaMA-Factory's auto-resume).
  r = test::run_gym("train " + kConfig + " --output_dir " + killed.string() + common);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos);
  EXPECT_EQ(read_file(killed / "adapter_model.safetensors"), read_file(full / "adapter_model.safetensors"));
  EXPECT_EQ(read_log(killed).size(), 12u);
  // A non-empty output_dir without checkpoints is refused with exit code 2.
  const auto clobber = out_dir("clobber");
  fs::create_directories(clobber);
  std::ofstream(clobber / "notes.txt") << "mine";
  r = test::run_gym("train " + kConfig + " --output_dir " + clobber.string() + " --overwrite_output_dir false --max_steps 2");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("overwrite_output_dir"), std::string::npos);
}

TEST(Sft, NonFiniteStepsAreSkippedAndStopTheRun) {
  const auto out = out_dir("nan");
  auto r = test::run_gym("train " + kConfig + " --output_dir " + out.string() + " --max_steps 30 --learning_rate 1e30 --max_nonfinite_steps 3");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("consecutive steps had a non-finite"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out / "adapter_model.safetensors"));   // a NaN never reaches a saved adapter
}

TEST(Sft, FullFineTuningWritesAModel) {
  const auto out = out_dir("fullft");
  auto r = test::run_gym("train " + kConfig + " --output_dir " + out.string() +
                         " --max_steps 5 --finetuning_type full --learning_rate 1e-3 --lora_rank null --lora_alpha null --lora_target null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  EXPECT_NO_THROW(model::load_model(out));
  // bf16 keeps a full fine-tune's weights in float32 (there is no frozen base to hold in bf16):
  // at lr 1e-5 AdamW moves each weight by ~1e-5, which bfloat16 weights (8 bits of mantissa)
  // would round away for nearly all of them.
  const auto bf = out_dir("fullft_bf16");
  r = test::run_gym("train " + kConfig + " --output_dir " + bf.string() + " --bf16 true --max_steps 3 --warmup_ratio 0" +
                    " --finetuning_type full --learning_rate 1e-5 --lora_rank null --lora_alpha null --lora_target null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  io::CheckpointTensors base(tests_tiny_model()), trained(bf);
  const std::string name = "model.layers.0.mlp.down_proj.weight";
  EXPECT_EQ(trained.info(name).dtype, "F32");
  const auto moved = trained.load(name).ne(base.load(name)).to(torch::kFloat64).mean().item<double>();
  EXPECT_GT(moved, 0.95) << "fraction of the weights that moved";
}

TEST(Sft, GradientCheckpointingGivesTheSameGradients) {
  auto m = model::load_model(tests_tiny_model());
  config::LoraArgs la;
  la.rank = 4;
  la.alpha = 8;
  torch::manual_seed(0);
  lora::inject(*m, la);
  for (auto& item : m->named_parameters())
    if (item.key().find("lora_B") != std::string::npos) torch::NoGradGuard(), item.value().data().normal_(0, 0.1);
  m->train();
  auto ids = torch::randint(0, 256, {2, 12}, torch::kInt64);
  std::vector<torch::Tensor> grads[2];
  for (int gc = 0; gc < 2; ++gc) {
    model::ForwardOptions fo;
    fo.gradient_checkpointing = gc == 1;
    m->forward(ids, fo).pow(2).mean().backward();
    for (auto& p : lora::trainable_parameters(*m)) grads[gc].push_back(p.second.grad().clone()), p.second.mutable_grad().zero_();
  }
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_LE((grads[0][i] - grads[1][i]).abs().max().item<double>(), 1e-6);
}
