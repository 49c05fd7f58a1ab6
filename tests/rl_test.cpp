// Rewards, and GRPO/GSPO end to end on tiny models (learning on the shipped arithmetic set).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "test_util.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/rl/rewards.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {
rl::RewardInput completion(const std::string& text, const std::string& answer, size_t n_ids = 3) {
  return {"q", text, std::vector<int64_t>(n_ids, 1), {{"answer", answer}}};
}
std::vector<nlohmann::json> read_log(const fs::path& dir) { return test::read_log(dir); }
fs::path out_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("gym_rl_" + name);
  fs::remove_all(d);
  return d;
}
const std::string kTiny = (source_dir() / "configs" / "tiny").string();
}  // namespace

TEST(RlRewards, AccuracyExtractsAndComparesNumerically) {
  EXPECT_EQ(rl::extract_answer("so \\boxed{\\frac{1}{2}} is it").value(), "\\frac{1}{2}");
  EXPECT_EQ(rl::extract_answer("work...\n#### 1,234").value(), "1,234");
  EXPECT_EQ(rl::extract_answer("The answer is 42.").value(), "42.");
  EXPECT_EQ(rl::extract_answer("3 then 5 then -7").value(), "-7");
  EXPECT_FALSE(rl::extract_answer("no digits").has_value());
  EXPECT_TRUE(rl::answers_match("1,234", "1234"));
  EXPECT_TRUE(rl::answers_match("2.50", "2.5"));
  EXPECT_TRUE(rl::answers_match("1/2", "0.5"));
  EXPECT_FALSE(rl::answers_match("3", "4"));
  rl::RewardSettings s;
  auto v = rl::score_rewards("accuracy", {completion("7", "7"), completion("it is 8", "7"), completion("#### 7.0", "7"),
                                           {"q", "7", {1}, nlohmann::json::object()}}, s);
  EXPECT_EQ(v[0], 1.0);
  EXPECT_EQ(v[1], 0.0);
  EXPECT_EQ(v[2], 1.0);
  EXPECT_TRUE(std::isnan(v[3]));   // no ground truth: cannot score
}

TEST(RlRewards, FormatAndLength) {
  rl::RewardSettings s;
  s.length_target = 4;
  auto f = rl::score_rewards("format", {completion("<think>\nhm\n</think>\n\n7", ""), completion("7", ""),
                                         completion("<think>x</think>", "")}, s);
  EXPECT_EQ(f, (std::vector<double>{1.0, 0.0, 0.0}));
  auto l = rl::score_rewards("length", {completion("", "", 3), completion("", "", 6), completion("", "", 20)}, s);
  EXPECT_EQ(l, (std::vector<double>{0.0, -0.5, -1.0}));
}

TEST(RlRewards, ExternalCommandContractAndErrors) {
  rl::RewardSettings s;
  const auto dir = out_dir("ext");
  fs::create_directories(dir);
  // One number per JSON line in: the completion's length.
  std::ofstream(dir / "ok.sh") << "while read -r line; do echo \"$line\" | grep -o '\"completion\":\"[^\"]*\"' | wc -c; done\n";
  s.external_command = "sh " + (dir / "ok.sh").string();
  auto v = rl::score_rewards("external", {completion("ab", ""), completion("abcd", "")}, s);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[1] - v[0], 2.0);
  auto expect = [&](const std::string& cmd, const std::string& fragment) {
    s.external_command = cmd;
    try {
      rl::score_rewards("external", {completion("a", ""), completion("b", "")}, s);
      ADD_FAILURE() << cmd;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect("exit 3", "failed (exit status 3)");
  expect("cat >/dev/null; echo 1", "printed 1 numbers for 2 completions");
  expect("cat >/dev/null; echo 1; echo banana", "'banana', which is not a number");
  s.external_timeout = 0.5;
  expect("sleep 5", "timed out");
}

TEST(RlEndToEnd, GspoLearnsOnTheArithmeticSet) {
  // Warm start: the shipped SFT config (~15 s), then the shipped GSPO config continuing its adapter.
  const auto sft = out_dir("warm"), gspo = out_dir("gspo");
  auto r = test::run_gym("train " + kTiny + "/sft_tiny.yaml --output_dir " + sft.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_gym("train " + kTiny + "/gspo_tiny.yaml --output_dir " + gspo.string() + " --adapter_name_or_path " + sft.string() +
                    " --logging_steps 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto log = read_log(gspo);
  ASSERT_EQ(log.size(), 300u);
  double first = 0, last = 0;
  for (size_t i = 0; i < 30; ++i) first += log[i]["reward"].get<double>() / 30, last += log[log.size() - 1 - i]["reward"].get<double>() / 30;
  // Stated margin: the mean accuracy reward of the last 30 steps beats the first 30 by 0.03 (10-step
  // windows are too noisy on this set: measured 0.34 → 0.43 with 30-step windows, while the 10-step
  // windows of the same run went 0.39 → 0.37).
  EXPECT_GT(last, first + 0.03) << "first " << first << " last " << last;
  for (const char* k : {"reward", "reward_std", "rewards/accuracy/mean", "frac_reward_zero_std", "completions/mean_length",
                        "completions/clipped_ratio", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
                        "entropy", "loss", "lr", "grad_norm"})
    EXPECT_TRUE(log.back().contains(k)) << k;
  EXPECT_TRUE(fs::exists(gspo / "adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(gspo / "training_reward.svg"));
  EXPECT_TRUE(fs::exists(gspo / "checkpoint-200" / "trainer_state.json"));
}

TEST(RlEndToEnd, AccuracyWithoutReferenceAnswersIsAnErrorAndAMappedColumnWorks) {
  // Rows whose reference answer sits in a column named `final`: the accuracy reward has nothing to
  // compare with, which must stop the run (naming the dataset, its columns and the mapping to use);
  // mapping `final` to `answer` in dataset_info.json makes the same rows train.
  const auto data = out_dir("noanswer_data"), run = out_dir("noanswer_run");
  fs::create_directories(data);
  {
    std::ofstream rows(data / "sums.jsonl");
    for (int a = 0; a < 8; ++a) rows << "{\"prompt\": \"" << a << "+1=\", \"final\": \"" << a + 1 << "\"}\n";
    std::ofstream info(data / "dataset_info.json");
    info << R"({"sums": {"file_name": "sums.jsonl", "columns": {"prompt": "prompt"}},
                "sums_mapped": {"file_name": "sums.jsonl", "columns": {"prompt": "prompt", "answer": "final"}}})";
  }
  const std::string common = "train " + kTiny + "/grpo_tiny.yaml --adapter_name_or_path null --max_steps 1 --per_device_train_batch_size 16 "
                             "--save_steps 1000 --plot_loss false --reward_funcs accuracy --dataset_dir " + data.string() + " --output_dir " + run.string();
  auto r = test::run_gym(common + " --dataset sums");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("dataset sums: reward 'accuracy' needs a reference answer"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the rows have: final"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"answer\": \"<column>\""), std::string::npos) << r.output;
  r = test::run_gym(common + " --dataset sums_mapped");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto log = read_log(run);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_FALSE(std::isnan(log[0]["rewards/accuracy/mean"].get<double>()));
}

TEST(RlEndToEnd, LogCompletionsWritesEachLoggingStepsRound) {
  // log_completions: at each logging step the round's completions with their rewards and advantages.
  const auto run = out_dir("completions");
  auto r = test::run_gym("train " + kTiny + "/grpo_tiny.yaml --adapter_name_or_path null --max_steps 4 --per_device_train_batch_size 16 "
                         "--logging_steps 2 --save_steps 1000 --plot_loss false --log_completions true --output_dir " + run.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(run / "completions.jsonl");
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 32u);   // 2 logging steps × 16 completions
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i]["step"].get<int64_t>(), i < 16 ? 2 : 4);
    EXPECT_TRUE(rows[i]["prompt"].is_string());
    EXPECT_TRUE(rows[i]["completion"].is_string());
    EXPECT_TRUE(rows[i]["rewards"].contains("accuracy"));
  }
  // advantages are group-centred: each group of 8 (one prompt) sums to zero
  for (size_t g = 0; g < 4; ++g) {
    double sum = 0;
    for (size_t k = 0; k < 8; ++k) sum += rows[g * 8 + k]["advantage"].get<double>();
    EXPECT_NEAR(sum, 0.0, 1e-5) << "group " << g;
    EXPECT_EQ(rows[g * 8]["prompt"], rows[g * 8 + 7]["prompt"]);
  }
}

TEST(RlEndToEnd, LoggedMetricsAreMeansOverTheLoggingWindow) {
  // The same run logged every step and every 3 steps: each 3-step log is the mean of the three
  // per-step values (as TRL logs), lr and grad_norm are the last step's.
  const auto every = out_dir("log1"), third = out_dir("log3");
  const std::string common = "train " + kTiny + "/grpo_tiny.yaml --adapter_name_or_path null --max_steps 6 --per_device_train_batch_size 16 "
                             "--save_steps 1000 --plot_loss false --output_dir ";
  auto r = test::run_gym(common + every.string() + " --logging_steps 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_gym(common + third.string() + " --logging_steps 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto l1 = read_log(every), l3 = read_log(third);
  ASSERT_EQ(l1.size(), 6u);
  ASSERT_EQ(l3.size(), 2u);
  for (size_t w = 0; w < 2; ++w) {
    for (const char* k : {"reward", "loss", "entropy", "completions/mean_length", "kl"}) {
      const double mean = (l1[3 * w][k].get<double>() + l1[3 * w + 1][k].get<double>() + l1[3 * w + 2][k].get<double>()) / 3;
      EXPECT_NEAR(l3[w][k].get<double>(), mean, 1e-9 + 1e-9 * std::abs(mean)) << k << " window " << w;
    }
    EXPECT_GT(l3[w]["tokens_per_second"].get<double>(), 0.0);
    EXPECT_EQ(l3[w]["grad_norm"], l1[3 * w + 2]["grad_norm"]);
    EXPECT_EQ(l3[w]["lr"], l1[3 * w + 2]["lr"]);
  }
}

TEST(RlEndToEnd, GrpoWithKlAndOffPolicyMoeRunThroughTheSameLoop) {
  const auto grpo = out_dir("grpo"), moe = out_dir("moe");
  auto r = test::run_gym("train " + kTiny + "/grpo_tiny.yaml --output_dir " + grpo.string() +
                         " --adapter_name_or_path null --max_steps 6 --per_device_train_batch_size 16 --logging_steps 1 --num_iterations 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto log = read_log(grpo);
  ASSERT_EQ(log.size(), 6u);
  EXPECT_TRUE(log.back().contains("kl"));   // beta 0.04: reference = base with adapters off
  EXPECT_GE(log.back()["kl"].get<double>(), 0.0);
  r = test::run_gym("train " + kTiny + "/moe_gspo_tiny.yaml --output_dir " + moe.string() + " --max_steps 6");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  log = read_log(moe);
  ASSERT_EQ(log.size(), 6u);
  EXPECT_TRUE(log.back().contains("aux_loss"));
  for (const char* k : {"moe/max_load", "moe/min_load", "moe/routing_entropy", "moe/idle_experts"})
    EXPECT_TRUE(log.back().contains(k)) << k;
  EXPECT_GT(log.back()["aux_loss"].get<double>(), 0.0);
  // LoRA on the MoE router and experts, saved under PEFT names
  const std::string st = read_file(moe / "adapter_model.safetensors");
  EXPECT_NE(st.find("base_model.model.model.layers.0.mlp.gate.lora_A.weight"), std::string::npos);
  EXPECT_NE(st.find("base_model.model.model.layers.0.mlp.experts.3.gate_proj.lora_A.weight"), std::string::npos);
}
