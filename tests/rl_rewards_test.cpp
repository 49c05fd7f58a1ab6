// The reward registry: answer extraction and comparison, format, length, the external command's
// contract and its errors, the batch API, weights and metrics.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "gym/core/error.h"
#include "gym/rl/rewards.h"

namespace fs = std::filesystem;
namespace rl = gym::rl;

namespace {

rl::RewardInput row(const std::string& completion, nlohmann::json columns = nlohmann::json::object(), size_t n_ids = 3,
                    const std::string& prompt = "q") {
  return {prompt, completion, std::vector<int64_t>(n_ids, 1), std::move(columns)};
}

fs::path script_dir() {
  static const fs::path d = [] {
    auto p = fs::temp_directory_path() / ("gym_rl_rewards_" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p;
  }();
  return d;
}

std::string script(const std::string& name, const std::string& body) {
  const auto p = script_dir() / name;
  std::ofstream(p) << "#!/bin/sh\n" << body << "\n";
  return "/bin/sh " + p.string();
}

// Runs the external reward on two completions and returns the error text ("" when it succeeded).
std::string external_error(const std::string& command, double timeout = 10) {
  try {
    rl::external_reward({row("a"), row("b")}, command, timeout);
  } catch (const gym::Error& e) {
    EXPECT_EQ(e.exit_code(), 1) << e.what();
    return e.what();
  }
  return "";
}

}  // namespace

TEST(RlRewardAnswers, ExtractsTheFinalAnswer) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"so \\boxed{42} done", "42"},
      {"first \\boxed{1} then \\boxed{\\frac{3}{4}}", "\\frac{3}{4}"},              // last box, nested braces
      {"\\boxed{x^{2} + \\sqrt{y}}", "x^{2} + \\sqrt{y}"},
      {"Natalia sold 48/2 = 24 clips.\n#### 72", "72"},
      {"#### 1,234\nextra 5", "1,234"},                                          // #### beats the last number
      {"#### $-3.50", "-3.50"},
      {"so the answer is: 17 apples, not 18", "17"},
      {"The answer is -2.", "-2."},
      {"I think The Answer Is **9**", "9"},
      {"we get 3, then 5, and finally -7", "-7"},                                 // last number, sign kept
      {"5-3 = 2", "2"},
      {"1,2,3", "3"},                                                            // not a thousands group
      {"costs .5 dollars", ".5"},
      {"half is 1/2", "1/2"},
      {"total 1,234,567 items", "1,234,567"},
  };
  for (const auto& [text, want] : cases) {
    const auto got = rl::extract_answer(text);
    ASSERT_TRUE(got.has_value()) << text;
    EXPECT_EQ(*got, want) << text;
  }
  EXPECT_FALSE(rl::extract_answer("no digits here").has_value());
  EXPECT_FALSE(rl::extract_answer("").has_value());
  EXPECT_EQ(rl::extract_answer("\\boxed{unclosed 7").value(), "7");   // an unbalanced box falls through
}

TEST(RlRewardAnswers, ComparesNumerically) {
  EXPECT_TRUE(rl::answers_match("1,234", "1234"));
  EXPECT_TRUE(rl::answers_match("2.50", "2.5"));
  EXPECT_TRUE(rl::answers_match("2.", "2"));
  EXPECT_TRUE(rl::answers_match("1/2", "0.5"));
  EXPECT_TRUE(rl::answers_match("\\frac{3}{4}", "0.75"));
  EXPECT_TRUE(rl::answers_match("-\\dfrac{1}{4}", "-0.25"));
  EXPECT_TRUE(rl::answers_match("$1,000", "1000"));
  EXPECT_TRUE(rl::answers_match("-7", "-7.000"));
  EXPECT_TRUE(rl::answers_match("40%", "40"));
  EXPECT_TRUE(rl::answers_match("x + 1", "x+1"));                 // text: spaces ignored
  EXPECT_FALSE(rl::answers_match("7", "-7"));
  EXPECT_FALSE(rl::answers_match("3", "4"));
  EXPECT_FALSE(rl::answers_match("1,23", "123"));                 // not a thousands group
  EXPECT_FALSE(rl::answers_match("1/0", "1"));
  EXPECT_FALSE(rl::answers_match("", ""));
  EXPECT_EQ(rl::parse_number("1,234.5").value(), 1234.5);
  EXPECT_FALSE(rl::parse_number("inf").has_value());
  EXPECT_FALSE(rl::parse_number("0x10").has_value());
}

TEST(RlRewardAnswers, AccuracyAgainstTheRowsColumns) {
  using nlohmann::json;
  auto acc = [](const std::string& completion, const json& cols) { return rl::accuracy_reward(row(completion, cols)); };
  EXPECT_EQ(acc("#### 72", {{"answer", "72"}}), 1.0);
  EXPECT_EQ(acc("#### 72", {{"answer", 72}}), 1.0);                                     // numeric column
  EXPECT_EQ(acc("\\boxed{0.5}", {{"solution", "\\frac{1}{2}"}}), 1.0);
  EXPECT_EQ(acc("it is 72", {{"answer", "She sold 48 + 24 = 72.\n#### 72"}}), 1.0);     // GSM8K-style solution
  EXPECT_EQ(acc("The answer is 1,234.", {{"ground_truth", "1234"}}), 1.0);
  EXPECT_EQ(acc("it is 71", {{"answer", "72"}}), 0.0);
  EXPECT_EQ(acc("no idea", {{"answer", "72"}}), 0.0);
  EXPECT_FALSE(acc("72", json::object()).has_value());                                 // nothing to compare: unscored
  EXPECT_FALSE(acc("72", {{"answer", nullptr}}).has_value());
}

TEST(RlRewardFormat, Qwen3ThinkThenAnswer) {
  auto fmt = [](const std::string& completion, const std::string& prompt = "q") {
    return rl::format_reward(row(completion, nlohmann::json::object(), 3, prompt)).value();
  };
  EXPECT_EQ(fmt("<think>\nlet me see\n</think>\n\nThe answer is 7."), 1.0);
  EXPECT_EQ(fmt("  <think></think>7"), 1.0);
  EXPECT_EQ(fmt("7"), 0.0);
  EXPECT_EQ(fmt("<think>x</think>"), 0.0);                  // no answer
  EXPECT_EQ(fmt("<think>x</think>\n  \n"), 0.0);
  EXPECT_EQ(fmt("<think>x"), 0.0);                          // never closed
  EXPECT_EQ(fmt("7 <think>x</think> 8"), 0.0);              // answer before the block
  EXPECT_EQ(fmt("<think>a</think>7<think>b</think>8"), 0.0);  // a second block
  EXPECT_EQ(fmt("<think><think>a</think>7"), 0.0);
  // the template already opened the block (thinking on) or closed it (thinking off)
  EXPECT_EQ(fmt("reasoning</think>\n7", "<|im_start|>assistant\n<think>\n"), 1.0);
  EXPECT_EQ(fmt("7", "<|im_start|>assistant\n<think>\n\n</think>\n\n"), 1.0);
}

TEST(RlRewardLength, PenaltyBeyondTheTarget) {
  auto len = [](size_t n, int64_t target) { return rl::length_reward(row("", nlohmann::json::object(), n), target).value(); };
  EXPECT_EQ(len(0, 4), 0.0);
  EXPECT_EQ(len(4, 4), 0.0);
  EXPECT_EQ(len(5, 4), -0.25);
  EXPECT_EQ(len(6, 4), -0.5);
  EXPECT_EQ(len(8, 4), -1.0);
  EXPECT_EQ(len(100, 4), -1.0);   // bounded
  rl::RewardSettings s;
  s.length_target = 10;
  EXPECT_EQ(rl::score_rewards("length", {row("", {}, 15)}, s), std::vector<double>{-0.5});
}

TEST(RlRewardExternal, ContractJsonLinesInNumbersOut) {
  // Reads every JSON line and prints the length of its completion plus its `bonus` column; 'null' (unscored) for "?".
  const auto cmd = script("ok.sh",
                          "while IFS= read -r line; do\n"
                          "  c=$(printf '%s' \"$line\" | sed 's/.*\"completion\":\"\\([^\"]*\\)\".*/\\1/')\n"
                          "  b=$(printf '%s' \"$line\" | sed 's/.*\"bonus\":\\([0-9]*\\).*/\\1/')\n"
                          "  if [ \"$c\" = \"?\" ]; then echo null; else echo $(( ${#c} + b )); fi\n"
                          "done");
  auto got = rl::external_reward({row("ab", {{"bonus", 10}}), row("abcd", {{"bonus", 0}}), row("?", {{"bonus", 0}})}, cmd, 10);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], 12.0);
  EXPECT_EQ(got[1], 4.0);
  EXPECT_FALSE(got[2].has_value());
  // once per batch: one run sees every line (wc -l prints 2, one number for two completions → count error)
  EXPECT_NE(external_error("wc -l").find("printed 1 numbers for 2 completions"), std::string::npos);
}

TEST(RlRewardExternal, FailuresAreClearErrorsNamingTheCommand) {
  EXPECT_NE(external_error("exit 3").find("external reward 'exit 3' failed (exit status 3)"), std::string::npos);
  EXPECT_NE(external_error("echo boom >&2; exit 1").find("stderr: boom"), std::string::npos);
  EXPECT_NE(external_error("cat >/dev/null; echo 1").find("printed 1 numbers for 2 completions"), std::string::npos);
  EXPECT_NE(external_error("cat >/dev/null; printf '1\\n2\\n3\\n'").find("printed 3 numbers"), std::string::npos);
  EXPECT_NE(external_error("cat >/dev/null; echo 1; echo banana").find("'banana', which is not a number"), std::string::npos);
  EXPECT_NE(external_error("echo 1; echo inf").find("'inf', which is not a number"), std::string::npos);
  EXPECT_NE(external_error("kill -9 $$").find("killed by signal 9"), std::string::npos);
  EXPECT_NE(external_error("/nonexistent/scorer").find("failed (exit status 127)"), std::string::npos);
  const auto slow = script("slow.sh", "sleep 30");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(external_error(slow, 0.5).find("timed out after 0.5 s"), std::string::npos);
  // output closed but the process lingers: still bounded by the timeout
  EXPECT_NE(external_error("exec >&- 2>&-; sleep 30", 0.5).find("timed out"), std::string::npos);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
  rl::RewardSettings s;
  try {
    rl::score_rewards("external", {row("a")}, s);
    ADD_FAILURE() << "no error without reward_command";
  } catch (const gym::Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
  }
}

TEST(RlRewardExternal, LargeBatchDoesNotDeadlockOnFullPipes) {
  // 2000 completions of 1 KiB: more than a pipe buffer each way, read and written concurrently.
  std::vector<rl::RewardInput> batch(2000, row(std::string(1024, 'x')));
  const auto got = rl::external_reward(batch, "while IFS= read -r l; do echo 0.5; done", 60);
  ASSERT_EQ(got.size(), batch.size());
  EXPECT_EQ(got.back(), 0.5);
}

TEST(RlRewardRegistry, BatchScoringWeightsAndMetrics) {
  const auto names = rl::reward_names();
  for (const char* n : {"accuracy", "format", "length", "external"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  rl::register_reward("test_constant", [](const std::vector<rl::RewardInput>& b, const rl::RewardSettings&) {
    return rl::RewardScores(b.size(), 2.0);
  });
  EXPECT_TRUE(rl::has_reward("test_constant"));
  EXPECT_THROW(rl::register_reward("accuracy", [](const auto& b, const auto&) { return rl::RewardScores(b.size()); }), gym::Error);
  try {
    rl::score_rewards("speling", {row("a")}, {});
    ADD_FAILURE() << "no error for an unknown reward";
  } catch (const gym::Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("known: accuracy, external, format, length"), std::string::npos) << e.what();
  }
  // accuracy: 1, 0, unscored; format: 1, 0, 0
  const std::vector<rl::RewardInput> batch = {row("<think>x</think> #### 5", {{"answer", "5"}}), row("6", {{"answer", "5"}}),
                                              row("7")};
  const std::vector<std::string> fns = {"accuracy", "format", "test_constant"};
  const auto scores = rl::score_batch(fns, batch, {});
  ASSERT_EQ(scores.size(), 3u);
  EXPECT_EQ(scores[0][0], 1.0);
  EXPECT_EQ(scores[0][1], 0.0);
  EXPECT_TRUE(std::isnan(scores[0][2]));
  EXPECT_EQ(scores[1], (std::vector<double>{1.0, 0.0, 0.0}));
  const auto combined = rl::combine_rewards({scores[0], scores[1]}, {1.0, 0.5});
  EXPECT_EQ(combined, (std::vector<double>{1.5, 0.0, 0.0}));   // NaN skipped (nansum)
  const auto nothing = rl::combine_rewards({{NAN, 1.0}}, {1.0});
  EXPECT_TRUE(std::isnan(nothing[0]));                       // no function scored: NaN → advantage 0
  EXPECT_THROW(rl::combine_rewards(scores, {1.0}), gym::Error);
  const auto m = rl::reward_metrics(fns, scores);
  EXPECT_DOUBLE_EQ(m.at("rewards/accuracy/mean"), 0.5);
  EXPECT_DOUBLE_EQ(m.at("rewards/accuracy/std"), std::sqrt(0.5));
  EXPECT_DOUBLE_EQ(m.at("rewards/format/mean"), 1.0 / 3);
  EXPECT_DOUBLE_EQ(m.at("rewards/test_constant/std"), 0.0);
}
