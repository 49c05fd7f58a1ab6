#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "gym/core/error.h"
#include "gym/config/config.h"
#include "gym/core/fs.h"
#include "gym/lora/adapter.h"
#include "gym/io/hf_dir.h"
#include "gym/io/safetensors.h"
#include "gym/model/create.h"
#include "gym/model/family.h"
#include "gym/model/generate.h"
#include "gym/model/loader.h"
#include "gym/model/score.h"
#include "gym/ops/ops.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {
fs::path tmp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("gym_model_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

const fs::path& tiny_model() {
  static const fs::path dir = [] {
    auto d = fs::temp_directory_path() / "gym_model_tiny_fixture";
    if (!fs::exists(d / "model.safetensors")) model::create_model("qwen3", "tiny", d, "bytes", 7);
    return d;
  }();
  return dir;
}

// Writes raw bytes: u64 header length + header + data.
void write_raw(const fs::path& p, const std::string& header, size_t data_bytes, int64_t declared = -1) {
  std::ofstream out(p, std::ios::binary);
  uint64_t n = declared >= 0 ? static_cast<uint64_t>(declared) : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\0');
}

void expect_error(const std::function<void()>& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}
}  // namespace

TEST(ModelCore, KvCacheDecodingEqualsFullForwardWithLeftPadding) {
  auto m = model::load_model(tiny_model());
  m->eval();
  torch::manual_seed(0);
  auto ids = torch::randint(0, 256, {2, 10}, torch::kInt64);
  auto mask = torch::ones({2, 10}, torch::kInt64);
  mask[1].narrow(0, 0, 3).zero_();   // row 1 left-padded by 3
  torch::NoGradGuard ng;
  model::ForwardOptions full;
  full.attention_mask = mask;
  auto want = m->forward(ids, full);
  auto cache = m->new_cache(10);
  model::ForwardOptions inc;
  inc.cache = &cache;
  inc.attention_mask = mask.narrow(1, 0, 6);
  auto got_prefix = m->forward(ids.narrow(1, 0, 6), inc);
  // Padding queries attend to nothing meaningful: compare positions whose mask is 1.
  double worst = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 6; ++t)
      if (mask[b][t].item<int64_t>() == 1) worst = std::max(worst, (got_prefix[b][t] - want[b][t]).abs().max().item<double>());
  for (int64_t t = 6; t < 10; ++t) {
    inc.attention_mask = mask.narrow(1, 0, t + 1);
    auto step = m->forward(ids.narrow(1, t, 1), inc);
    for (int64_t b = 0; b < 2; ++b) worst = std::max(worst, (step[b][0] - want[b][t]).abs().max().item<double>());
  }
  EXPECT_LE(worst, 1e-5);
  EXPECT_EQ(cache.length, 10);
}

TEST(ModelCore, SamplingProcessorsFollowHuggingFace) {
  auto s = torch::tensor({{1.0f, 2.0f, 3.0f, 4.0f}});
  auto k = model::apply_top_k(s.clone(), 2);
  EXPECT_TRUE(std::isinf(k[0][0].item<float>()) && std::isinf(k[0][1].item<float>()));
  EXPECT_EQ(k[0][3].item<float>(), 4.0f);
  // top-p 0.5: softmax(1,2,3,4) = .032 .087 .237 .644 → only the top token survives
  auto p = model::apply_top_p(s.clone(), 0.5);
  EXPECT_TRUE(std::isinf(p[0][2].item<float>()));
  EXPECT_EQ(p[0][3].item<float>(), 4.0f);
  auto r = model::apply_repetition_penalty(torch::tensor({{2.0f, -2.0f, 1.0f}}), torch::tensor({{0, 1}}), 2.0);
  EXPECT_FLOAT_EQ(r[0][0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(r[0][1].item<float>(), -4.0f);
  EXPECT_FLOAT_EQ(r[0][2].item<float>(), 1.0f);
}

TEST(ModelCore, SeededSamplingIsReproducibleAndStopsAtStopIds) {
  auto m = model::load_model(tiny_model());
  auto prompt = torch::tensor({{10, 20, 30}, {0, 40, 50}}, torch::kInt64);
  auto mask = torch::tensor({{1, 1, 1}, {0, 1, 1}}, torch::kInt64);
  model::SamplingConfig sc;
  sc.do_sample = true;
  sc.max_new_tokens = 12;
  sc.temperature = 1.5;
  sc.top_k = 50;
  sc.top_p = 0.9;
  auto a = model::generate(*m, prompt, mask, sc, at::detail::createCPUGenerator(5));
  auto b = model::generate(*m, prompt, mask, sc, at::detail::createCPUGenerator(5));
  EXPECT_TRUE(torch::equal(a.completion_ids, b.completion_ids));
  // Stop on the first sampled token of row 0: everything after it is masked and padded.
  sc.stop_ids = {a.completion_ids[0][0].item<int64_t>()};
  sc.pad_id = 999;
  auto c = model::generate(*m, prompt, mask, sc, at::detail::createCPUGenerator(5));
  EXPECT_EQ(c.completion_mask[0].sum().item<int64_t>(), 1);
  EXPECT_FALSE(c.truncated[0].item<bool>());
  EXPECT_EQ(c.completion_ids[0][1].item<int64_t>(), 999);
}

TEST(ModelCore, CreateModelAndScoreCliAgreeWithTheLibrary) {
  auto dir = tmp_dir("cli");
  auto r = test::run_gym("create-model --arch qwen3 --preset tiny --out " + (dir / "m").string() + " --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(dir / "m" / f)) << f;
  std::ofstream(dir / "in.json") << R"({"input_ids": [[1, 2, 3, 4], [0, 0, 5, 6]], "attention_mask": [[1, 1, 1, 1], [0, 0, 1, 1]]})";
  r = test::run_gym("score --model " + (dir / "m").string() + " --input " + (dir / "in.json").string() + " --output " +
                    (dir / "out.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto out = nlohmann::json::parse(read_file(dir / "out.json"));
  auto m = model::load_model(dir / "m");
  auto ids = torch::tensor({1, 2, 3, 4, 0, 0, 5, 6}, torch::kInt64).view({2, 4});
  auto mask = torch::tensor({1, 1, 1, 1, 0, 0, 1, 1}, torch::kInt64).view({2, 4});
  auto s = model::score(*m, ids, mask);
  EXPECT_NEAR(out["loss"].get<double>(), s.loss, 1e-6);
  EXPECT_EQ(out["logprobs"][1][0].get<double>(), 0.0);   // pad → pad pair
  EXPECT_EQ(out["logprobs"][1][1].get<double>(), 0.0);   // pad → token pair
  EXPECT_NEAR(out["logprobs"][1][2].get<double>(), s.logprobs[1][2].item<double>(), 1e-6);
  EXPECT_EQ(out["logits"][0][0].size(), 512u);
  // the same seed gives the same weights
  model::create_model("qwen3", "tiny", dir / "again", "bytes", 3);
  EXPECT_EQ(read_file(dir / "again" / "model.safetensors"), read_file(dir / "m" / "model.safetensors"));
}

TEST(ModelCore, SafetensorsRoundTripAndShards) {
  auto dir = tmp_dir("st");
  std::map<std::string, torch::Tensor> t = {{"a", torch::randn({3, 4})},
                                            {"b", torch::arange(10, torch::kInt64)},
                                            {"c", torch::randn({2}).to(torch::kBFloat16)},
                                            {"e", torch::empty({0})}};
  io::save_safetensors(dir / "x.safetensors", t);
  io::SafeTensorsFile f(dir / "x.safetensors");
  for (const auto& [k, v] : t) EXPECT_TRUE(torch::equal(f.load(k), v)) << k;
  EXPECT_EQ(f.metadata().at("format"), "pt");
  // a sharded folder through model.safetensors.index.json
  io::save_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", t["a"]}});
  io::save_safetensors(dir / "model-00002-of-00002.safetensors", {{"b", t["b"]}});
  std::ofstream(dir / "model.safetensors.index.json")
      << R"({"metadata": {"total_size": 128}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})";
  io::CheckpointTensors ck(dir);
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(torch::equal(ck.load("b"), t["b"]));
}

TEST(ModelCore, BadSafetensorsAndCheckpointsAreClearErrors) {
  auto dir = tmp_dir("bad");
  const fs::path p = dir / "x.safetensors";
  std::ofstream(p, std::ios::binary) << "abc";
  expect_error([&] { io::SafeTensorsFile f(p); }, "truncated");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8, 1000);
  expect_error([&] { io::SafeTensorsFile f(p); }, "runs past the end");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12);
  expect_error([&] { io::SafeTensorsFile f(p); }, "overlapping");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})", 20);
  expect_error([&] { io::SafeTensorsFile f(p); }, "gap");
  write_raw(p, R"({"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", 8);
  expect_error([&] { io::SafeTensorsFile f(p); }, "unknown dtype 'Q7'");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8);
  expect_error([&] { io::SafeTensorsFile f(p); }, "need 12");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4);
  expect_error([&] { io::SafeTensorsFile f(p); }, "truncated file");
  write_raw(p, R"([1,2])", 0);
  expect_error([&] { io::SafeTensorsFile f(p); }, "not a JSON object");

  // a tensor whose shape does not match config.json
  const fs::path m = dir / "model";
  fs::copy(tiny_model(), m);
  auto tensors = io::CheckpointTensors(m);
  std::map<std::string, torch::Tensor> all;
  for (const auto& n : tensors.names()) all[n] = tensors.load(n);
  all["model.layers.0.self_attn.q_proj.weight"] = torch::zeros({32, 64});
  io::save_safetensors(m / "model.safetensors", all);
  expect_error([&] { model::load_model(m); }, "'model.layers.0.self_attn.q_proj.weight' has shape [32, 64] but config.json implies [64, 64]");
  all.erase("model.layers.0.self_attn.q_proj.weight");
  all["extra.weight"] = torch::zeros({1});
  io::save_safetensors(m / "model.safetensors", all);
  expect_error([&] { model::load_model(m); }, "missing tensors [model.layers.0.self_attn.q_proj.weight]; unexpected tensors [extra.weight]");
  // config.json missing a required field, and an unknown model_type
  auto cfg = nlohmann::json::parse(read_file(m / "config.json"));
  cfg.erase("hidden_size");
  write_file_atomic(m / "config.json", cfg.dump());
  expect_error([&] { model::load_model(m); }, "missing required field 'hidden_size'");
  cfg["hidden_size"] = 64;
  cfg["model_type"] = "llama";
  write_file_atomic(m / "config.json", cfg.dump());
  expect_error([&] { model::load_model(m); }, "unknown model_type 'llama'");
  cfg["model_type"] = "qwen3_next";   // a dense Qwen3 config relabelled: the hybrid's fields are missing
  write_file_atomic(m / "config.json", cfg.dump());
  expect_error([&] { model::load_model(m); }, "missing required field 'linear_num_key_heads'");
}

TEST(ModelCore, HubCacheResolution) {
  auto root = tmp_dir("hub");
  const auto snap = root / "models--Qwen--Tiny" / "snapshots" / "abc123";
  fs::create_directories(snap);
  fs::create_directories(root / "models--Qwen--Tiny" / "refs");
  std::ofstream(root / "models--Qwen--Tiny" / "refs" / "main") << "abc123\n";
  setenv("HF_HUB_CACHE", root.c_str(), 1);
  EXPECT_EQ(io::resolve_model_dir("Qwen/Tiny"), snap);
  expect_error([&] { io::resolve_model_dir("Qwen/Missing"); }, "models--Qwen--Missing");
  unsetenv("HF_HUB_CACHE");
  setenv("HF_HOME", root.c_str(), 1);
  EXPECT_EQ(io::hf_hub_cache(), root / "hub");
  unsetenv("HF_HOME");
}

namespace {
// The tiny model with LoRA r 4 on every projection and B ~ N(0, 0.05) (a trained-like adapter:
// PEFT's B = 0 would make it the identity), in eval mode.
model::CausalLM tiny_model_with_trained_like_adapter(uint64_t seed) {
  auto m = model::load_model(tiny_model());
  config::LoraArgs la;
  la.rank = 4, la.alpha = 8, la.target = {"all"};
  lora::inject(*m, la);
  torch::NoGradGuard ng;
  torch::manual_seed(seed);
  for (auto& item : m->named_parameters())
    if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0, 0.05);
  m->eval();
  return m;
}
}  // namespace

TEST(ModelCore, MergedLoraSamplingMatchesTheUnmergedAdapter) {
  // generate() merges a float32 adapter for the rollout: x·(W + B·A·s) instead of x·W + x·Aᵀ·Bᵀ·s.
  // Only rounding differs: the step logits agree to float32 precision and greedy tokens are equal.
  auto m = tiny_model_with_trained_like_adapter(2);
  auto prompt = torch::tensor({{10, 20, 30, 40}, {0, 40, 50, 60}}, torch::kInt64);
  auto mask = torch::tensor({{1, 1, 1, 1}, {0, 1, 1, 1}}, torch::kInt64);
  model::SamplingConfig sc;
  sc.max_new_tokens = 10;
  sc.merge_lora = true;
  auto merged = model::generate(*m, prompt, mask, sc, std::nullopt, true);
  sc.merge_lora = false;
  auto plain = model::generate(*m, prompt, mask, sc, std::nullopt, true);
  EXPECT_TRUE(torch::equal(merged.completion_ids, plain.completion_ids));
  double worst = 0;
  for (size_t i = 0; i < merged.step_logits.size(); ++i) {
    auto lm = merged.step_logits[i].log_softmax(-1), lp = plain.step_logits[i].log_softmax(-1);
    worst = std::max(worst, (lm - lp).abs().max().item<double>());
  }
  EXPECT_LE(worst, 1e-4);
  std::cout << "merged vs unmerged adapter: max |Δ log-prob| over " << merged.step_logits.size() << " steps = " << worst << "\n";
}

// Rollouts batch the groups of several prompts (model::generate_shared_prompts): each prompt is
// prefilled once and right-aligned to the longest. Where decode_rows_are_independent(), a group's
// step logits and tokens are bit for bit those it gets decoded alone, whatever the other prompt's
// length (its left padding): what keeps 1- and 2-process rollouts equal.
TEST(ModelCore, GroupsDecodedTogetherEqualEachGroupAlone) {
  if (!ops::cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2: groups are decoded one per batch";
  auto m = tiny_model_with_trained_like_adapter(5);
  ASSERT_TRUE(model::decode_rows_are_independent(*m));
  const auto a = torch::tensor({11, 12, 13}, torch::kInt64), b = torch::tensor({40, 41, 42, 43, 44, 45, 46}, torch::kInt64);
  model::SamplingConfig sc;
  sc.max_new_tokens = 12;
  sc.do_sample = true;
  auto gen = [](uint64_t key) { return at::detail::createCPUGenerator(key); };
  for (bool fast : {true, false}) {
    sc.fast_sampler = fast;
    auto both = model::generate_shared_prompts(*m, {a, b}, 4, sc, {gen(1), gen(2)}, true);
    auto alone_a = model::generate_shared_prompts(*m, {a}, 4, sc, {gen(1)}, true);
    auto alone_b = model::generate_shared_prompts(*m, {b}, 4, sc, {gen(2)}, true);
    ASSERT_EQ(both.size(), 2u);
    for (auto [together, alone] : {std::pair{&both[0], &alone_a[0]}, std::pair{&both[1], &alone_b[0]}}) {
      EXPECT_TRUE(torch::equal(together->sequences, alone->sequences)) << "fast sampler " << fast;
      EXPECT_TRUE(torch::equal(together->completion_mask, alone->completion_mask));
      // steps after the group alone stopped are decoded only in the batch
      ASSERT_GE(together->step_logits.size(), alone->step_logits.size());
      for (size_t t = 0; t < alone->step_logits.size(); ++t) EXPECT_TRUE(torch::equal(together->step_logits[t], alone->step_logits[t])) << "step " << t;
    }
    EXPECT_EQ(both[0].sequences.size(1), 3 + 12);   // no left padding in a group's own output
    // the prompt prefilled once gives its G rows the same first-step logits, and sampling spreads them
    EXPECT_TRUE(torch::equal(both[1].step_logits[0][0], both[1].step_logits[0][3]));
  }
  // a naive batch (both prompts left-padded into one prefill) is not padding-invariant: the check
  // above would see it
  {
    sc.fast_sampler = true;
    auto ids = torch::zeros({2, 7}, torch::kInt64), mask = torch::zeros({2, 7}, torch::kInt64);
    ids[0].narrow(0, 4, 3).copy_(a), mask[0].narrow(0, 4, 3).fill_(1);
    ids[1].copy_(b), mask[1].fill_(1);
    auto padded = model::generate(*m, ids, mask, sc, gen(1), true);
    auto alone = model::generate(*m, a.unsqueeze(0), torch::ones({1, 3}, torch::kInt64), sc, gen(1), true);
    EXPECT_FALSE(torch::equal(padded.step_logits[0][0], alone.step_logits[0][0]));
  }
  // the greedy rows of a group equal generate() on the repeated prompt, to float32 rounding
  sc.do_sample = false;
  auto shared = model::generate_shared_prompts(*m, {b}, 2, sc, {gen(3)}, true);
  auto plain = model::generate(*m, b.unsqueeze(0).expand({2, 7}).contiguous(), torch::ones({2, 7}, torch::kInt64), sc, std::nullopt, true);
  EXPECT_TRUE(torch::equal(shared[0].sequences, plain.sequences));
  EXPECT_LE((shared[0].step_logits[0] - plain.step_logits[0]).abs().max().item<double>(), 1e-5);
  // linear attention (Qwen3-Next) is not checked for it: its groups are decoded one per batch
  auto next = model::build_model(model::preset_arch("qwen3_next", "tiny"));
  EXPECT_FALSE(model::decode_rows_are_independent(*next));
}
