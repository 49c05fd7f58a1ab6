// 4-bit bases: bitsandbytes checkpoint round trip, clear errors, QLoRA training end to end.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/io/safetensors.h"
#include "gym/model/create.h"
#include "gym/model/loader.h"
#include "gym/model/score.h"
#include "gym/quant/nf4.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {
fs::path tmp(const std::string& n) {
  auto d = fs::temp_directory_path() / ("gym_qlora_" + n);
  fs::remove_all(d);
  return d;
}
void expect_error(const std::function<void()>& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "expected: " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(Nf4Checkpoint, ExportReloadAndScoreEqualDequantizeThenForward) {
  const auto d = tmp("export");
  model::create_model("qwen3", "tiny", d / "base", "bytes", 11);
  auto r = test::run_gym("export --model " + (d / "base").string() + " --quantize nf4 --out " + (d / "q4").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto q = model::load_model(d / "q4");   // pre-quantized: no re-quantization
  auto onthefly = model::load_model(d / "base", torch::kFloat32, {4, 64, true});
  auto ids = torch::randint(0, 256, {2, 9}, torch::kInt64);
  auto mask = torch::ones_like(ids);
  auto a = model::score(*q, ids, mask), b = model::score(*onthefly, ids, mask);
  EXPECT_LE((a.logits - b.logits).abs().max().item<double>(), 1e-5);
  // dequantize-then-forward: a dense model holding the dequantized weights gives the same logits
  auto dense = model::load_model(d / "base");
  {
    torch::NoGradGuard ng;
    auto sd = model::base_state_dict(*q, torch::kFloat32);
    for (auto& item : dense->named_parameters()) item.value().copy_(sd.at(item.key()));
  }
  EXPECT_LE((model::score(*dense, ids, mask).logits - a.logits).abs().max().item<double>(), 1e-5);
  // the packed tensors follow bitsandbytes' names; the base stores ≤ 4.13 bits per quantized parameter
  io::SafeTensorsFile f(d / "q4" / "model.safetensors");
  EXPECT_TRUE(f.contains("model.layers.0.self_attn.q_proj.weight.quant_state.bitsandbytes__nf4"));
  EXPECT_TRUE(f.contains("model.layers.0.mlp.down_proj.weight.nested_absmax"));
  EXPECT_EQ(f.info("model.layers.0.self_attn.q_proj.weight").dtype, "U8");
  EXPECT_FALSE(f.contains("model.embed_tokens.weight.absmax"));
}

TEST(Nf4Checkpoint, UnsupportedQuantizationAndInconsistentStateAreClearErrors) {
  nlohmann::json qc = {{"quant_method", "gptq"}};
  expect_error([&] { model::check_quantization_config(qc, "c.json"); }, "quant_method 'gptq' is not supported");
  qc = {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}};
  expect_error([&] { model::check_quantization_config(qc, "c.json"); }, "8-bit");
  qc = {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"bnb_4bit_quant_type", "int4"}};
  expect_error([&] { model::check_quantization_config(qc, "c.json"); }, "'int4' is not supported");
  auto w = quant::quantize_nf4(torch::randn({16, 64}), 64, true);
  auto t = quant::nf4_to_bnb_tensors("p.weight", w);
  auto get = [&](const std::string& n) { return t.count(n) ? t[n] : torch::Tensor(); };
  auto back = quant::nf4_from_bnb_tensors("p.weight", get);
  EXPECT_TRUE(torch::equal(quant::dequantize_nf4(back), quant::dequantize_nf4(w)));
  t["p.weight"] = t["p.weight"].narrow(0, 0, 100);   // shape no longer matches the data
  expect_error([&] { quant::nf4_from_bnb_tensors("p.weight", get); }, "packed bytes");
  t = quant::nf4_to_bnb_tensors("p.weight", w);
  const std::string js = R"({"quant_type": "nf4", "blocksize": 128, "dtype": "float32", "shape": [16, 64], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.1})";
  t["p.weight.quant_state.bitsandbytes__nf4"] = torch::from_blob(const_cast<char*>(js.data()), {static_cast<int64_t>(js.size())}, torch::kUInt8).clone();
  expect_error([&] { quant::nf4_from_bnb_tensors("p.weight", get); }, "blocksize 128");
  // Hostile quant_state fields: each is a config error naming the tensor, never a division by zero,
  // an unbounded allocation or a JSON type exception.
  auto with_state = [&](const std::string& state, const char* expected) {
    t = quant::nf4_to_bnb_tensors("p.weight", w);
    t["p.weight.quant_state.bitsandbytes__nf4"] =
        torch::from_blob(const_cast<char*>(state.data()), {static_cast<int64_t>(state.size())}, torch::kUInt8).clone();
    expect_error([&] { quant::nf4_from_bnb_tensors("p.weight", get); }, expected);
  };
  const std::string nested = R"(, "nested_blocksize": 256, "nested_offset": 0.1})";
  with_state(R"({"quant_type": "nf4", "blocksize": 0, "shape": [16, 64])" + nested, "'blocksize' must be an integer");
  with_state(R"({"quant_type": "nf4", "blocksize": "64", "shape": [16, 64])" + nested, "'blocksize' must be an integer");
  with_state(R"({"quant_type": "nf4", "blocksize": 64, "shape": [16, 64], "nested_blocksize": 0, "nested_offset": 0.1})",
             "'nested_blocksize' must be an integer");
  with_state(R"({"quant_type": "nf4", "blocksize": 64, "shape": [16, 64], "nested_blocksize": 256})", "'nested_offset'");
  with_state(R"({"quant_type": "nf4", "blocksize": 64, "shape": [1099511627776, 1099511627776])" + nested, "positive sizes");
  with_state(R"({"quant_type": "nf4", "blocksize": 64, "shape": [16, -64])" + nested, "positive sizes");
  with_state(R"({"quant_type": "nf4", "blocksize": 64, "shape": "16x64")" + nested, "'shape' must be a list");
  with_state(R"({"quant_type": 4, "blocksize": 64, "shape": [16, 64])" + nested, "quant_type 4 is not supported");
  t = quant::nf4_to_bnb_tensors("p.weight", w);
  t.erase("p.weight.nested_absmax");
  expect_error([&] { quant::nf4_from_bnb_tensors("p.weight", get); }, "without p.weight.nested_absmax");
  t = quant::nf4_to_bnb_tensors("p.weight", w);
  t["p.weight.nested_absmax"] = t["p.weight.nested_absmax"].clone().fill_(NAN);
  expect_error([&] { quant::nf4_from_bnb_tensors("p.weight", get); }, "NaN or infinity");
}

TEST(Nf4Training, QloraSftAndGspoTrainEndToEnd) {
  const auto sft = tmp("sft"), gspo = tmp("gspo");
  const std::string tiny = (source_dir() / "configs" / "tiny").string();
  auto r = test::run_gym("train " + tiny + "/sft_tiny.yaml --quantization_bit 4 --output_dir " + sft.string() + " --max_steps 60 --logging_steps 10");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(sft / "trainer_log.jsonl");
  std::string first, line, last;
  std::getline(in, first);
  while (std::getline(in, line)) last = line;
  EXPECT_LT(nlohmann::json::parse(last)["loss"].get<double>(), nlohmann::json::parse(first)["loss"].get<double>());
  EXPECT_TRUE(fs::exists(sft / "adapter_model.safetensors"));
  r = test::run_gym("train " + tiny + "/gspo_tiny.yaml --quantization_bit 4 --adapter_name_or_path " + sft.string() +
                    " --output_dir " + gspo.string() + " --max_steps 4 --per_device_train_batch_size 16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(gspo / "adapter_model.safetensors"));
  auto v = test::run_gym("validate " + tiny + "/sft_tiny.yaml --quantization_bit 4");
  EXPECT_NE(v.output.find("4.127 bits per 4-bit parameter"), std::string::npos) << v.output;
}
