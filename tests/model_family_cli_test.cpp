// Qwen3-Next and the Qwen3-Omni thinker through the CLI, as a user meets them: gym score and
// gym generate on the transformers fixtures (token ids, no tokenizer), export of a complete Omni
// checkpoint, create-model for both architectures, and the presets' memory estimates.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "test_util.h"
#include "gym/core/fs.h"
#include "gym/io/safetensors.h"
#include "gym/lora/adapter.h"
#include "gym/model/family.h"
#include "gym/model/loader.h"
#include "model_test_util.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {

const fs::path kParity = fs::path(GYM_TEST_DATA) / "parity";

fs::path fresh_dir(const std::string& name) { return test::fresh_dir("family_" + name); }

// gym score on a fixture: logits and next-token log-probs of unpadded positions to 1e-4, aux_loss to 1e-5.
void check_score(const fs::path& fixture) {
  SCOPED_TRACE(fixture.string());
  const auto ref = nlohmann::json::parse(read_file(fixture / "reference.json"));
  const auto dir = fresh_dir("score_" + fixture.filename().string());
  std::ofstream(dir / "in.json") << nlohmann::json{{"input_ids", ref["input_ids"]}, {"attention_mask", ref["attention_mask"]}}.dump();
  auto r = test::run_gym("score --model " + fixture.string() + " --input " + (dir / "in.json").string() + " --output " +
                         (dir / "out.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto out = nlohmann::json::parse(read_file(dir / "out.json"));
  const auto mask = test::to_tensor_2d(ref["attention_mask"]);
  const auto want = test::to_tensor_3d(ref["logits"]);
  auto got = test::to_tensor_3d(out["logits"]);   // [B][T][V]
  ASSERT_EQ(got.sizes(), want.sizes());
  double worst = 0;
  for (int64_t b = 0; b < mask.size(0); ++b)
    for (int64_t t = 0; t < mask.size(1); ++t)
      if (mask[b][t].item<int64_t>()) worst = std::max(worst, (got[b][t] - want[b][t]).abs().max().item<double>());
  EXPECT_LE(worst, 1e-4);
  auto logprobs = test::to_tensor_2d_f(out["logprobs"]);   // [B][T-1]
  for (size_t b = 0; b < ref["logprobs"].size(); ++b)
    for (const auto& e : ref["logprobs"][b]) {
      const int64_t pos = e["pos"].get<int64_t>();   // log p(target at pos+1 | ≤ pos)
      EXPECT_NEAR(logprobs[static_cast<int64_t>(b)][pos].item<double>(), e["logprob"].get<double>(), 1e-4);
    }
  EXPECT_NEAR(out["loss"].get<double>(), ref["loss"].get<double>(), 1e-4);
  EXPECT_NEAR(out["aux_loss"].get<double>(), ref["aux_loss"].get<double>(), 1e-5);
}

void check_greedy(const fs::path& fixture) {
  SCOPED_TRACE(fixture.string());
  const auto ref = nlohmann::json::parse(read_file(fixture / "reference.json"));
  const auto dir = fresh_dir("greedy_" + fixture.filename().string());
  std::ofstream(dir / "in.jsonl") << nlohmann::json{{"input_ids", ref["greedy_prompt"][0]}}.dump() << "\n";
  auto r = test::run_gym("generate --model " + fixture.string() + " --input " + (dir / "in.jsonl").string() +
                         " --greedy --max_new_tokens " + std::to_string(ref["greedy_ids"].size()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto line = r.output.substr(r.output.rfind("{\"completion_ids\""));
  const auto got = nlohmann::json::parse(line.substr(0, line.find('\n')));
  EXPECT_EQ(got["completion_ids"], ref["greedy_ids"]);
}

}  // namespace

TEST(ModelFamilyCli, ScoreMatchesTransformersOnNextAndOmni) {
  check_score(kParity / "hf_qwen3_next_tiny");
  check_score(kParity / "hf_qwen3_omni_thinker_tiny");
}

TEST(ModelFamilyCli, GreedyGenerationReproducesTransformers) {
  check_greedy(kParity / "hf_qwen3_next_tiny");
  check_greedy(kParity / "hf_qwen3_omni_thinker_tiny");
}

TEST(ModelFamilyCli, OmniAdapterUsesPeftNamesAndExportKeepsTheWholeCheckpoint) {
  const fs::path omni = kParity / "hf_qwen3_omni_thinker_tiny";
  const auto dir = fresh_dir("omni_export");
  auto m = model::load_model(omni);
  config::LoraArgs la;
  la.rank = 4;
  la.alpha = 8;
  la.target = {"q_proj", "v_proj", "down_proj"};
  lora::inject(*m, la);
  torch::manual_seed(5);
  {
    torch::NoGradGuard ng;
    for (auto& [name, p] : lora::trainable_parameters(*m)) p.normal_(0, 0.05);
  }
  lora::save_adapter(*m, dir / "adapter", la, omni.string(), m->config().weight_prefix);
  io::SafeTensorsFile adapter(dir / "adapter" / "adapter_model.safetensors");
  EXPECT_TRUE(adapter.contains("base_model.model.thinker.model.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_TRUE(adapter.contains("base_model.model.thinker.model.layers.2.mlp.experts.7.down_proj.lora_B.weight"));

  auto r = test::run_gym("export --model " + omni.string() + " --adapter " + (dir / "adapter").string() + " --out " +
                         (dir / "merged").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  io::CheckpointTensors in(omni), out(dir / "merged");
  EXPECT_EQ(in.names(), out.names());   // every tensor of the full Omni checkpoint is there
  int foreign = 0;
  for (const auto& n : in.names()) {
    if (n.rfind("thinker.model.", 0) == 0 || n.rfind("thinker.lm_head.", 0) == 0) continue;
    ++foreign;
    auto a = in.load(n), b = out.load(n);
    ASSERT_EQ(a.scalar_type(), b.scalar_type()) << n;
    ASSERT_TRUE(torch::equal(a, b)) << n << " changed";
  }
  EXPECT_GE(foreign, 153 + 79);   // code2wav and talker, plus the thinker's audio and vision towers
  auto cfg_in = nlohmann::json::parse(read_file(omni / "config.json")), cfg_out = nlohmann::json::parse(read_file(dir / "merged" / "config.json"));
  EXPECT_EQ(cfg_in["talker_config"], cfg_out["talker_config"]);
  EXPECT_EQ(cfg_in["thinker_config"]["vision_config"], cfg_out["thinker_config"]["vision_config"]);
  // The merged checkpoint computes what base + adapter computes.
  auto merged = model::load_model(dir / "merged");
  auto ids = torch::randint(0, 512, {2, 9}, torch::kInt64);
  torch::NoGradGuard ng;
  m->eval();
  EXPECT_LE((merged->forward(ids) - m->forward(ids)).abs().max().item<double>(), 1e-4);
}

TEST(ModelFamilyCli, NextExportKeepsMtpAndRoundTrips) {
  const fs::path next = kParity / "hf_qwen3_next_tiny";
  const auto dir = fresh_dir("next_export");
  auto r = test::run_gym("export --model " + next.string() + " --quantize nf4 --out " + (dir / "nf4").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  io::CheckpointTensors in(next), out(dir / "nf4");
  for (const auto& n : in.names())
    if (n.rfind("mtp.", 0) == 0) { ASSERT_TRUE(torch::equal(in.load(n), out.load(n))) << n; }
  EXPECT_TRUE(out.contains("model.layers.0.linear_attn.in_proj_qkvz.weight.absmax"));
  EXPECT_FALSE(out.contains("model.layers.0.mlp.gate.weight.absmax"));   // the router stays dense
  // The exported 4-bit checkpoint computes exactly what quantize-on-load of the original computes.
  auto q = model::load_model(dir / "nf4");
  auto on_load = model::load_model(next, torch::kFloat32, {4, 64, true});
  auto base = model::load_model(next);
  auto ids = torch::randint(0, 512, {1, 16}, torch::kInt64);
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(q->forward(ids), on_load->forward(ids)));
  EXPECT_GT((q->forward(ids) - base->forward(ids)).abs().max().item<double>(), 0.0);   // and it is 4-bit
}

TEST(ModelFamilyCli, CreateModelForBothArchitectures) {
  for (const char* arch : {"qwen3_next", "qwen3_omni_moe"}) {
    SCOPED_TRACE(arch);
    const auto dir = fresh_dir(std::string("create_") + arch);
    auto r = test::run_gym(std::string("create-model --arch ") + arch + " --preset tiny --out " + (dir / "m").string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto cfg = model::load_arch_config(dir / "m");
    EXPECT_EQ(cfg.model_type, arch);
    auto m = model::load_model(dir / "m");
    auto ids = torch::randint(0, 300, {1, 6}, torch::kInt64);
    torch::NoGradGuard ng;
    EXPECT_TRUE(torch::isfinite(m->forward(ids)).all().item<bool>());
  }
  const auto cfg = model::load_arch_config(fs::temp_directory_path() / "gym_family_create_qwen3_omni_moe" / "m");
  EXPECT_EQ(cfg.weight_prefix, "thinker.");
  io::CheckpointTensors t(fs::temp_directory_path() / "gym_family_create_qwen3_omni_moe" / "m");
  EXPECT_TRUE(t.contains("thinker.model.embed_tokens.weight"));
}

TEST(ModelFamilyCli, NextAndOmniPresetsValidateWithMemoryEstimatesAndSayNotDownloaded) {
  for (const char* preset : {"next", "omni"}) {
    SCOPED_TRACE(preset);
    const auto cfg = (source_dir() / "models" / preset / "configs" / "gspo_training.yaml").string();
    auto v = test::run_gym("validate " + cfg);
    ASSERT_EQ(v.exit_code, 0) << v.output;
    EXPECT_NE(v.output.find("# memory estimate from"), std::string::npos) << v.output;
    const auto at = v.output.find("base weights");
    ASSERT_NE(at, std::string::npos);
    const double gib = std::stod(v.output.substr(v.output.find_first_of("0123456789", at)));
    // 4-bit bases: Next ~80 B parameters ≈ 40-45 GiB, the Omni thinker ~30 B ≈ 15-18 GiB.
    if (std::string(preset) == "next") { EXPECT_TRUE(gib > 35 && gib < 50) << gib; }
    else EXPECT_TRUE(gib > 13 && gib < 20) << gib;
    auto t = test::run_gym("train " + cfg + " --output_dir " + fresh_dir(std::string("nodl_") + preset).string());
    EXPECT_EQ(t.exit_code, 2) << t.output;
    EXPECT_NE(t.output.find("gym does not download"), std::string::npos) << t.output;
  }
}

TEST(ModelFamilyCli, ConfigKnowsExactlyTheRegisteredFamilies) {
  // config/ may not include model/: its create_model_arch list must equal the registry.
  for (const auto& name : model::model_family_names()) {
    auto rc = config::load_config_from_string("create_model_arch: " + name + "\n", {});
    EXPECT_EQ(rc.config.model.create_model_arch, name);
  }
  EXPECT_THROW(config::load_config_from_string("create_model_arch: qwen2\n", {}), Error);
  EXPECT_EQ(model::model_family_names().size(), 4u);
}
