// Parity with Hugging Face transformers on reference folders (config.json + model.safetensors +
// reference.json): the copies in tests/data/parity and every folder under $GYM_PARITY_DIR.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "gym/core/fs.h"
#include "gym/model/generate.h"
#include "gym/model/loader.h"
#include "gym/model/score.h"
#include "gym/lora/adapter.h"
#include "model_test_util.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {

std::vector<fs::path> reference_folders() {
  std::vector<fs::path> out;
  auto scan = [&](const fs::path& root) {
    if (!fs::is_directory(root)) return;
    if (fs::exists(root / "reference.json")) out.push_back(root);
    for (const auto& e : fs::directory_iterator(root))
      if (e.is_directory() && fs::exists(e.path() / "reference.json")) out.push_back(e.path());
  };
  scan(fs::path(GYM_TEST_DATA) / "parity");
  if (const char* extra = std::getenv("GYM_PARITY_DIR"); extra && *extra) scan(extra);
  return out;
}

void check_folder(const fs::path& dir) {
  SCOPED_TRACE(dir.string());
  const auto ref = nlohmann::json::parse(read_file(dir / "reference.json"));
  auto model = test::load_reference_model(dir);
  if (fs::exists(dir / "adapter_config.json")) lora::load_adapter(*model, dir, model->config().weight_prefix);   // a LoRA reference
  auto [ids, mask, fo] = test::reference_inputs(ref);
  torch::NoGradGuard ng;
  auto logits = model->forward(ids, fo);                                   // [B, T, V]
  auto expected = test::to_tensor_3d(ref["logits"]);
  ASSERT_EQ(logits.sizes(), expected.sizes());
  double worst = 0;
  for (int64_t b = 0; b < ids.size(0); ++b)
    for (int64_t t = 0; t < ids.size(1); ++t)
      if (mask[b][t].item<int64_t>() == 1)
        worst = std::max(worst, (logits[b][t] - expected[b][t]).abs().max().item<double>());
  EXPECT_LE(worst, 1e-4) << "max |logit difference| on attended positions";
  if (ref.contains("aux_loss")) {   // a Qwen3-MoE reference: the unscaled load-balancing loss with the mask
    auto scored = model::score(*model, ids, mask, fo.position_ids);
    ASSERT_TRUE(scored.aux_loss.has_value());
    EXPECT_NEAR(*scored.aux_loss, ref["aux_loss"].get<double>(), 1e-5);
  }

  auto logp = torch::log_softmax(logits.to(torch::kFloat64), -1);
  for (size_t b = 0; b < ref["logprobs"].size(); ++b)
    for (const auto& e : ref["logprobs"][b]) {
      const double got = logp[b][e["pos"].get<int64_t>()][e["target"].get<int64_t>()].item<double>();
      EXPECT_NEAR(got, e["logprob"].get<double>(), 1e-4);
    }

  if (ref.contains("greedy_ids")) {
    auto prompt = test::to_tensor_2d(ref.contains("greedy_prompt") ? ref["greedy_prompt"]
                                                                    : nlohmann::json::array({ref["input_ids"][0]}));
    model::SamplingConfig sc;
    sc.max_new_tokens = static_cast<int64_t>(ref["greedy_ids"].size());
    auto out = model::generate(*model, prompt, torch::ones_like(prompt), sc, std::nullopt, true);
    auto want = ref["greedy_ids"].get<std::vector<int64_t>>();
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(out.completion_ids[0][i].item<int64_t>(), want[i]) << "greedy step " << i;
    if (ref.contains("greedy_step_logits")) {
      auto steps = test::to_tensor_2d_f(ref["greedy_step_logits"]);
      for (size_t i = 0; i < out.step_logits.size() && i < static_cast<size_t>(steps.size(0)); ++i)
        EXPECT_LE((out.step_logits[i][0] - steps[i]).abs().max().item<double>(), 1e-4) << "cached step " << i;
    }
  }
}

}  // namespace

TEST(ModelParity, MatchesTransformersOnEveryReferenceFolder) {
  const auto folders = reference_folders();
  ASSERT_FALSE(folders.empty());
  for (const auto& f : folders) check_folder(f);
}
