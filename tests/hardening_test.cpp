// Hostile inputs get one clear line and the right exit code: never a crash, a hang or an
// allocation failure. (Output-dir safety: output_dir_test.cpp; the reward sandbox: rl_sandbox_test.cpp.)
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "test_util.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/model/create.h"
#include "gym/model/loader.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {
fs::path fresh(const std::string& name) { return test::fresh_dir("hardening_" + name); }

// Writes `config` as dir/config.json and expects loading the model to be a config error holding `needle`.
void expect_load_error(const fs::path& dir, const std::string& config, const std::string& needle) {
  write_file_atomic(dir / "config.json", config);
  try {
    model::load_model(dir);
    ADD_FAILURE() << "loaded: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(Hardening, AConfigThatWouldAllocateTerabytesIsAClearError) {
  const auto d = fresh("huge");
  model::create_model("qwen3", "tiny", d / "m", "bytes", 0);
  auto cfg = nlohmann::json::parse(read_file(d / "m" / "config.json"));
  cfg["num_hidden_layers"] = 4000;
  cfg["intermediate_size"] = 100000000;
  expect_load_error(d / "m", cfg.dump(), "config.json implies");
  for (const char* bad : {R"({"rope_theta": -1.0})", R"({"rms_norm_eps": 0.0})", R"({"vocab_size": 0})"}) {
    auto c = nlohmann::json::parse(read_file(d / "m" / "config.json"));
    c["num_hidden_layers"] = 2;
    c["intermediate_size"] = 128;
    c.update(nlohmann::json::parse(bad));
    write_file_atomic(d / "m" / "config.json", c.dump());
    EXPECT_THROW(model::load_model(d / "m"), Error) << bad;
  }
}

TEST(Hardening, DeepJsonAndEndlessLayerCountsAreClearErrors) {
  const auto d = fresh("deep");
  model::create_model("qwen3", "tiny", d / "m", "bytes", 0);
  const auto good = read_file(d / "m" / "config.json");
  // 10^12 layers: refused before anything loops over them (it hung in the checks before).
  auto c = nlohmann::json::parse(good);
  c["num_hidden_layers"] = 1000000000000LL;
  expect_load_error(d / "m", c.dump(), "'num_hidden_layers' must lie in [1, 4096]");
  c = nlohmann::json::parse(good);
  c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 0.0}};   // sampled NaN before
  expect_load_error(d / "m", c.dump(), "'factor' must lie in [1, 1e6]");
  model::create_model("qwen3_moe", "tiny", d / "moe", "bytes", 0);
  auto moe = nlohmann::json::parse(read_file(d / "moe" / "config.json"));
  moe["moe_intermediate_size"] = -4;   // a LibTorch "negative dimension" error, exit 1, before
  expect_load_error(d / "moe", moe.dump(), "'moe_intermediate_size' must be positive");
  // An extra field nested 300 000 deep parsed, then overflowed the stack when copied.
  const std::string deep = good.substr(0, good.rfind('}')) + ", \"x\": " + std::string(300000, '[') + std::string(300000, ']') + "}";
  expect_load_error(d / "m", deep, "nested deeper than 512");
  // A warm start that leads back to itself: refused, not an endless recursion.
  const std::string sft = (source_dir() / "configs" / "tiny" / "sft_tiny.yaml").string();
  write_file_atomic(d / "ws.yaml", "extends: " + sft + "\nadapter_name_or_path: " + (d / "adapter").string() +
                                       "\nadapter_warm_start: " + (d / "ws.yaml").string() + "\noutput_dir: " + (d / "out").string() + "\n");
  auto r = test::run_gym("train " + (d / "ws.yaml").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("(a cycle)"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(d / "out"));
}

TEST(Hardening, FifosAndDevicesAreRefusedWithoutHanging) {
  const auto d = fresh("fifo");
  ASSERT_EQ(::mkfifo((d / "config.yaml").c_str(), 0644), 0);
  // Reading a FIFO would block forever: gym refuses it before opening.
  auto r = test::run_gym("validate " + (d / "config.yaml").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("not a regular file (a FIFO)"), std::string::npos) << r.output;
  r = test::run_gym("validate /dev/zero");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("a device"), std::string::npos) << r.output;
  EXPECT_THROW(read_file(d), Error);   // a directory
}

TEST(Hardening, FloatKeysOutOfRangeNameTheKey) {
  for (const char* kv : {"--learning_rate nan", "--temperature inf", "--reward_timeout -1", "--top_p 0", "--lora_dropout 1.5"}) {
    auto r = test::run_gym("validate " + (source_dir() / "configs/tiny/sft_tiny.yaml").string() + " " + kv);
    EXPECT_EQ(r.exit_code, 2) << kv << "\n" << r.output;
    const std::string key = std::string(kv).substr(2, std::string(kv).find(' ') - 2);
    EXPECT_NE(r.output.find(key), std::string::npos) << kv << "\n" << r.output;
    EXPECT_EQ(test::count_error_lines(r.output), 1) << r.output;
  }
}

TEST(Hardening, MaxNewTokensZeroMeansZero) {
  const auto d = fresh("gen0");
  model::create_model("qwen3", "tiny", d / "m", "bytes", 0);
  std::ofstream(d / "in.jsonl") << R"({"input_ids": [1, 2, 3]})" << "\n";
  auto r = test::run_gym("generate --model " + (d / "m").string() + " --input " + (d / "in.jsonl").string() + " --max_new_tokens 0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(R"("completion_ids":[])"), std::string::npos) << r.output;
  std::ofstream(d / "bad.jsonl") << R"({"input_ids": [1, 99999]})" << "\n";
  r = test::run_gym("generate --model " + (d / "m").string() + " --input " + (d / "bad.jsonl").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("outside the model's vocabulary"), std::string::npos) << r.output;
}
