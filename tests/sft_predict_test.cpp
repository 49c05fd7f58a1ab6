// do_predict with predict_with_generate (LLaMA-Factory's SFT predict): generated_predictions.jsonl
// holds, for every eval example, the prompt cut before the answer, the model's greedy completion
// and the reference; a prediction run (do_train: false) from the saved adapter writes the same file,
// and each prediction equals what `gym generate --greedy` completes for that prompt.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "cli_util.h"
#include "test_util.h"
#include "gym/core/fs.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {

const std::string kSft = (source_dir() / "configs" / "tiny" / "sft_tiny.yaml").string();
const std::string kPredict = " --val_size 16 --do_predict true --predict_with_generate true --max_new_tokens 16";

std::vector<nlohmann::ordered_json> read_lines(const fs::path& file) {
  std::vector<nlohmann::ordered_json> out;
  std::ifstream in(file);
  for (std::string l; std::getline(in, l);) out.push_back(nlohmann::ordered_json::parse(l));
  return out;
}

}  // namespace

TEST(SftPredict, PredictionsAreTheGreedyCompletionsOfTheEvalPromptsAndAPredictionRunRepeatsThem) {
  const auto root = test::fresh_dir("sft_predict");
  const auto trained = root / "trained", predicted = root / "predicted";
  auto r = test::run_gym("train " + kSft + " --output_dir " + trained.string() + " --max_steps 200" + kPredict);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto lines = read_lines(trained / "generated_predictions.jsonl");
  ASSERT_EQ(lines.size(), 16u);
  const std::regex sum(R"(^<\|im_start\|>user\n(\d+)([-+])(\d+)=<\|im_end\|>\n<\|im_start\|>assistant\n$)");
  int checked = 0;
  for (const auto& l : lines) {
    std::vector<std::string> keys;
    for (auto it = l.begin(); it != l.end(); ++it) keys.push_back(it.key());
    EXPECT_EQ(keys, (std::vector<std::string>{"prompt", "predict", "label"}));   // LLaMA-Factory's order
    const auto prompt = l["prompt"].get<std::string>();
    std::smatch m;
    if (std::regex_match(prompt, m, sum)) {   // the reference is the answer of the prompt's sum, then the turn's newline
      const int a = std::stoi(m[1]), b = std::stoi(m[3]);
      EXPECT_EQ(l["label"].get<std::string>(), std::to_string(m[2] == "+" ? a + b : a - b) + "\n") << prompt;
      ++checked;
    }
    EXPECT_EQ(l["predict"].get<std::string>().find("<|im_end|>"), std::string::npos);   // special tokens skipped
  }
  EXPECT_GT(checked, 8);
  const auto results = nlohmann::json::parse(std::ifstream(trained / "predict_results.json"));
  EXPECT_GT(results.at("predict_samples_per_second").get<double>(), 0);
  EXPECT_TRUE(nlohmann::json::parse(std::ifstream(trained / "all_results.json")).contains("predict_runtime"));

  // Each prediction is what gym generate completes greedily from that prompt with the saved adapter.
  {
    std::ofstream in(root / "prompts.jsonl");
    for (size_t i = 0; i < 4; ++i) in << nlohmann::json{{"prompt", lines[i]["prompt"]}}.dump() << "\n";
  }
  r = test::run_gym("generate --model tiny-qwen3 --adapter " + trained.string() + " --raw --greedy --max_new_tokens 16 --input " +
                    (root / "prompts.jsonl").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream out(r.output);
  size_t i = 0;
  for (std::string l; std::getline(out, l);) {
    if (l.empty() || l[0] != '{') continue;
    ASSERT_LT(i, 4u);
    EXPECT_EQ(nlohmann::json::parse(l)["text"].get<std::string>(), lines[i]["predict"].get<std::string>()) << i;
    ++i;
  }
  EXPECT_EQ(i, 4u);

  // A prediction run: no training step, no adapter written, the same predictions.
  r = test::run_gym("train " + kSft + " --output_dir " + predicted.string() + " --do_train false --adapter_name_or_path " +
                    trained.string() + kPredict);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_lines(predicted / "generated_predictions.jsonl"), lines);
  EXPECT_FALSE(fs::exists(predicted / "adapter_model.safetensors"));
  EXPECT_FALSE(fs::exists(predicted / "train_results.json"));
  EXPECT_TRUE(fs::exists(predicted / "predict_results.json"));

  // With two processes each rank completes its share and rank 0 writes them in dataset order.
  const auto two = root / "two";
  r = test::run_gym("train " + kSft + " --nproc_per_node 2 --output_dir " + two.string() + " --do_train false --adapter_name_or_path " +
                    trained.string() + kPredict);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_lines(two / "generated_predictions.jsonl"), lines);
}

TEST(SftPredict, MisconfiguredPredictionsAreConfigErrors) {
  const auto out = test::fresh_dir("sft_predict_bad", false);
  const std::string base = "train " + kSft + " --output_dir " + out.string();
  auto expect_error = [&](const std::string& args, const std::string& needle) {
    const auto r = test::run_gym(base + args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out)) << "a refused config touched output_dir";
  };
  expect_error(" --do_predict true --val_size 8", "needs predict_with_generate: true");
  expect_error(" --do_predict true --predict_with_generate true", "key 'do_predict' needs an eval split");
  expect_error(" --do_train false", "do_train: false leaves nothing to do");
  expect_error(" --stage gspo --do_predict true --predict_with_generate true --val_size 8", "for stage sft");
}
