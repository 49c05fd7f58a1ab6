// Qwen3-Next: the gated delta rule's chunked and recurrent forms agree, padding never reaches
// the recurrent state, decoding state does not grow, and config.json is read strictly. Logit
// parity with transformers is in model_parity_test (tests/data/parity/hf_qwen3_next_tiny).
#include <gtest/gtest.h>

#include <filesystem>

#include "gym/core/fs.h"
#include "gym/model/decoder.h"
#include "gym/model/family.h"
#include "gym/lora/adapter.h"
#include "gym/model/generate.h"
#include "gym/model/loader.h"
#include "gym/nn/gated_delta_net.h"
#include "model_test_util.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {

const fs::path kNext = fs::path(GYM_TEST_DATA) / "parity" / "hf_qwen3_next_tiny";

void set_recurrent(model::CausalLMImpl& m, bool on) {
  for (auto& mod : m.modules())
    if (auto* g = mod->as<nn::GatedDeltaNetImpl>()) g->force_recurrent = on;
}

double max_diff_unpadded(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) {
  auto keep = mask.to(torch::kBool).unsqueeze(-1).expand_as(a);
  return (a - b).abs().masked_select(keep).max().item<double>();
}

}  // namespace

TEST(QwenNext, ChunkedEqualsRecurrentOnRandomInputsWithAnInitialState) {
  torch::manual_seed(3);
  const int64_t b = 2, t = 150, h = 3, dk = 8, dv = 5;   // t crosses two chunk boundaries
  auto q = torch::randn({b, t, h, dk}), k = torch::randn({b, t, h, dk}), v = torch::randn({b, t, h, dv});
  auto g = -torch::rand({b, t, h}) * 0.5, beta = torch::rand({b, t, h});
  auto s0 = torch::randn({b, h, dk, dv}) * 0.1;
  auto [o_rec, s_rec] = nn::recurrent_gated_delta_rule(q, k, v, g, beta, s0);
  for (int64_t chunk : {64, 16, 7}) {
    auto [o, s] = nn::chunk_gated_delta_rule(q, k, v, g, beta, s0, chunk);
    EXPECT_LE((o - o_rec).abs().max().item<double>(), 2e-5) << "chunk " << chunk;
    EXPECT_LE((s - s_rec).abs().max().item<double>(), 2e-5) << "chunk " << chunk;
  }
  // Splitting the sequence and continuing from the state equals one pass.
  auto [o1, s1] = nn::chunk_gated_delta_rule(q.narrow(1, 0, 70), k.narrow(1, 0, 70), v.narrow(1, 0, 70), g.narrow(1, 0, 70),
                                             beta.narrow(1, 0, 70), s0);
  auto [o2, s2] = nn::chunk_gated_delta_rule(q.narrow(1, 70, 80), k.narrow(1, 70, 80), v.narrow(1, 70, 80), g.narrow(1, 70, 80),
                                             beta.narrow(1, 70, 80), s1);
  EXPECT_LE((torch::cat({o1, o2}, 1) - o_rec).abs().max().item<double>(), 2e-5);
  EXPECT_LE((s2 - s_rec).abs().max().item<double>(), 2e-5);
}

TEST(QwenNext, ChunkedModelEqualsRecurrentModelOnTheFixture) {
  const auto ref = nlohmann::json::parse(read_file(kNext / "reference.json"));
  auto m = model::load_model(kNext);
  auto ids = test::to_tensor_2d(ref["input_ids"]);
  auto mask = test::to_tensor_2d(ref["attention_mask"]);
  torch::NoGradGuard ng;
  model::ForwardOptions fo;
  fo.attention_mask = mask;
  auto chunked = m->forward(ids, fo);
  set_recurrent(*m, true);
  auto recurrent = m->forward(ids, fo);
  set_recurrent(*m, false);
  EXPECT_LE(max_diff_unpadded(chunked, recurrent, mask), 1e-4);   // transformers' own two paths differ by ~1.3e-5 here
}

TEST(QwenNext, LeftPaddingNeverReachesTheStateEvenInABatchOfOne) {
  auto m = model::load_model(kNext);
  torch::manual_seed(0);
  auto row = torch::randint(0, 512, {1, 20}, torch::kInt64);
  auto padded = torch::cat({torch::zeros({1, 7}, torch::kInt64), row}, 1);
  auto pmask = torch::cat({torch::zeros({1, 7}, torch::kInt64), torch::ones({1, 20}, torch::kInt64)}, 1);
  torch::NoGradGuard ng;
  auto alone = m->forward(row);
  model::ForwardOptions fo;
  fo.attention_mask = pmask;
  auto with_pads = m->forward(padded, fo).narrow(1, 7, 20);
  EXPECT_LE((alone - with_pads).abs().max().item<double>(), 1e-4);
}

TEST(QwenNext, DecodingStateHasAFixedSizeAndMatchesTheFullForward) {
  auto m = model::load_model(kNext);
  torch::manual_seed(1);
  auto ids = torch::randint(0, 512, {2, 40}, torch::kInt64);
  torch::NoGradGuard ng;
  auto full = m->forward(ids);
  auto cache = m->new_cache(40);
  model::ForwardOptions fo;
  fo.cache = &cache;
  auto prefill = m->forward(ids.narrow(1, 0, 10), fo);
  double worst = (prefill - full.narrow(1, 0, 10)).abs().max().item<double>();
  std::vector<std::vector<int64_t>> state_shapes;
  for (int64_t t = 10; t < 40; ++t) {
    auto step = m->forward(ids.narrow(1, t, 1), fo);
    worst = std::max(worst, (step.select(1, 0) - full.select(1, t)).abs().max().item<double>());
    if (t == 11 || t == 39) {
      const auto& lc = cache.layers[0];   // a linear-attention layer: no keys or values, fixed-size states
      EXPECT_FALSE(lc.k.defined());
      state_shapes.push_back(lc.recurrent_state.sizes().vec());
      state_shapes.push_back(lc.conv_state.sizes().vec());
    }
  }
  EXPECT_LE(worst, 1e-4);
  ASSERT_EQ(state_shapes.size(), 4u);
  EXPECT_EQ(state_shapes[0], state_shapes[2]);
  EXPECT_EQ(state_shapes[1], state_shapes[3]);
  EXPECT_EQ(state_shapes[0], (std::vector<int64_t>{2, 4, 16, 16}));   // [B, nv, dk, dv]
  EXPECT_EQ(state_shapes[1], (std::vector<int64_t>{2, 2 * 2 * 16 + 4 * 16, 4}));   // [B, C, K]
}

TEST(QwenNext, ConfigReadsLayerTypesAndRejectsBadOnes) {
  auto j = nlohmann::json::parse(read_file(kNext / "config.json"));
  auto c = model::parse_arch_config(j, "next.json");
  EXPECT_TRUE(c.is_linear_attention(0) && c.is_linear_attention(2) && !c.is_linear_attention(3));
  EXPECT_EQ(c.rotary_dim(), 4);
  EXPECT_TRUE(c.norm_unit_offset && c.attn_output_gate);
  EXPECT_EQ(c.shared_expert_intermediate_size, 32);
  auto no_types = j;
  no_types.erase("layer_types");
  no_types["full_attention_interval"] = 2;
  auto d = model::parse_arch_config(no_types, "next.json");
  EXPECT_EQ(d.layer_types, (std::vector<std::string>{"linear_attention", "full_attention", "linear_attention", "full_attention"}));
  auto expect_error = [](nlohmann::json bad, const std::string& needle) {
    try {
      model::parse_arch_config(bad, "next.json");
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto bad = j;
  bad["layer_types"] = {"linear_attention"};
  expect_error(bad, "layer_types has 1 entries");
  bad = j;
  bad["layer_types"][1] = "sliding_attention";
  expect_error(bad, "sliding_attention");
  bad = j;
  bad["linear_num_value_heads"] = 3;
  expect_error(bad, "not a multiple of linear_num_key_heads");
  bad = j;
  bad["model_type"] = "qwen4";
  expect_error(bad, "unknown model_type 'qwen4'");
}

TEST(QwenNext, LoraAndQloraReachTheNewModules) {
  auto m = model::load_model(kNext, torch::kFloat32, {4, 64, true});
  config::LoraArgs la;
  la.rank = 4;
  la.alpha = 8;
  la.target = {"all"};
  auto adapted = lora::inject(*m, la);
  auto has = [&](const std::string& n) { return std::find(adapted.begin(), adapted.end(), n) != adapted.end(); };
  for (const char* name : {"model.layers.0.linear_attn.in_proj_qkvz", "model.layers.0.linear_attn.in_proj_ba",
                           "model.layers.0.linear_attn.out_proj", "model.layers.3.self_attn.q_proj",
                           "model.layers.1.mlp.shared_expert.up_proj", "model.layers.1.mlp.shared_expert_gate",
                           "model.layers.2.mlp.experts.5.down_proj"})
    EXPECT_TRUE(has(name)) << name;
  EXPECT_FALSE(has("model.layers.0.mlp.gate"));   // the router only when named
  EXPECT_FALSE(has("lm_head"));
  // 4-bit: projections are NF4, the router and the shared-expert gate stay dense.
  for (auto& item : m->named_modules("", false)) {
    auto* lin = item.value()->as<nn::LinearImpl>();
    if (!lin) continue;
    const bool quantized = lin->quantized_base() != nullptr;
    EXPECT_EQ(quantized, lin->role == nn::LinearRole::kProjection) << item.key();
  }
  // A small LoRA step on the 4-bit base lowers the loss (seeded: B starts at zero, so the first
  // step moves only B along the negative gradient).
  torch::manual_seed(11);
  auto ids = torch::randint(0, 512, {2, 12}, torch::kInt64);
  auto params = lora::trainable_parameters(*m);
  torch::optim::SGD opt([&] { std::vector<torch::Tensor> v; for (auto& p : params) v.push_back(p.second); return v; }(),
                        torch::optim::SGDOptions(0.05));
  auto loss_of = [&] {
    auto logits = m->forward(ids.narrow(1, 0, 11));
    return torch::nn::functional::cross_entropy(logits.reshape({-1, 512}), ids.narrow(1, 1, 11).reshape({-1}));
  };
  auto before = loss_of();
  before.backward();
  opt.step();
  torch::NoGradGuard ng;
  EXPECT_LT(loss_of().item<double>(), before.item<double>() - 1e-4);
}

TEST(QwenNext, GradientCheckpointingWithPaddingGivesTheSameGradients) {
  auto m = model::build_model(model::preset_arch("qwen3_next", "tiny"));
  model::init_random_weights(*m, 3);
  config::LoraArgs la;
  la.rank = 4;
  la.alpha = 8;
  la.target = {"all"};
  lora::inject(*m, la);
  torch::NoGradGuard outer;
  for (auto& [n, p] : lora::trainable_parameters(*m)) p.normal_(0, 0.05);
  torch::AutoGradMode on(true);
  m->train();
  auto ids = torch::randint(0, 300, {2, 10}, torch::kInt64);
  auto mask = torch::ones({2, 10}, torch::kInt64);
  mask[1].narrow(0, 0, 4).zero_();   // left padding reaches the linear-attention layers as zeros
  auto grads = [&](bool checkpointing) {
    model::ForwardOptions fo;
    fo.attention_mask = mask;
    fo.gradient_checkpointing = checkpointing;
    m->zero_grad();
    m->forward(ids, fo).pow(2).mean().backward();
    std::vector<torch::Tensor> g;
    // (an expert no token was routed to has no gradient: zeros, so both passes still compare)
    for (auto& [n, p] : lora::trainable_parameters(*m)) g.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    return g;
  };
  auto plain = grads(false), recomputed = grads(true);
  ASSERT_EQ(plain.size(), recomputed.size());
  double worst = 0;
  for (size_t i = 0; i < plain.size(); ++i) worst = std::max(worst, (plain[i] - recomputed[i]).abs().max().item<double>());
  EXPECT_LE(worst, 1e-6);
  EXPECT_GT(plain[0].abs().sum().item<double>(), 0.0);
}
