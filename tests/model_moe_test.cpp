#include <gtest/gtest.h>

#include "gym/model/family.h"
#include "gym/model/loader.h"
#include "gym/model/score.h"
#include "gym/nn/layers.h"

using namespace gym;

namespace {
model::ArchConfig tiny_moe() {
  auto c = model::preset_arch("qwen3_moe", "tiny");
  c.num_hidden_layers = 3;
  c.decoder_sparse_step = 1;
  c.mlp_only_layers = {1};
  return c;
}
}  // namespace

TEST(Moe, LayersFollowSparseStepAndMlpOnlyLayersWithHfNames) {
  auto c = tiny_moe();
  EXPECT_TRUE(c.is_moe_layer(0));
  EXPECT_FALSE(c.is_moe_layer(1));
  c.decoder_sparse_step = 2;
  c.mlp_only_layers = {};
  EXPECT_FALSE(c.is_moe_layer(0));   // (i + 1) % step == 0
  EXPECT_TRUE(c.is_moe_layer(1));
  c = tiny_moe();
  auto m = model::build_model(c);
  auto names = m->named_parameters().keys();
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  EXPECT_TRUE(has("model.layers.0.mlp.gate.weight"));
  EXPECT_TRUE(has("model.layers.0.mlp.experts.7.down_proj.weight"));
  EXPECT_TRUE(has("model.layers.1.mlp.gate_proj.weight"));   // dense MLP in an mlp_only layer
  EXPECT_FALSE(has("model.layers.1.mlp.gate.weight"));
}

TEST(Moe, GroupedDispatchEqualsAPerTokenReference) {
  auto c = tiny_moe();
  torch::manual_seed(1);
  nn::MoeOptions mo;
  mo.hidden = c.hidden_size, mo.num_experts = c.num_experts, mo.top_k = c.num_experts_per_tok;
  mo.expert_intermediate = c.moe_intermediate_size, mo.norm_topk_prob = true;
  nn::SparseMoe moe(mo);
  for (auto& p : moe->parameters()) torch::NoGradGuard(), p.data().normal_(0, 0.2);
  auto x = torch::randn({2, 5, c.hidden_size});
  torch::NoGradGuard ng;
  auto [y, logits] = moe(x);
  // Reference: every token through its top-k experts one by one.
  auto xs = x.reshape({-1, c.hidden_size});
  auto probs = torch::softmax(xs.matmul(moe->gate->weight.t()), -1);
  auto [w, idx] = probs.topk(c.num_experts_per_tok, -1);
  w = w / w.sum(-1, true);
  auto want = torch::zeros_like(xs);
  for (int64_t t = 0; t < xs.size(0); ++t)
    for (int64_t k = 0; k < c.num_experts_per_tok; ++k) {
      auto e = moe->experts[idx[t][k].item<int64_t>()]->as<nn::MLPImpl>();
      want[t] += e->forward(xs[t].unsqueeze(0))[0] * w[t][k];
    }
  EXPECT_LE((y.reshape({-1, c.hidden_size}) - want).abs().max().item<double>(), 1e-5);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{10, c.num_experts}));
}

TEST(Moe, LoadBalancingLossMatchesTransformersFormula) {
  const int64_t e = 8, k = 2;
  // Uniform router: every slot's one-hot row sums to 1 and P = 1/E, so aux = E · k · (1/E) = k.
  std::vector<torch::Tensor> uniform = {torch::zeros({6, e}), torch::zeros({6, e})};
  EXPECT_NEAR(model::load_balancing_loss(uniform, e, k).item<double>(), 2.0, 1e-6);
  // Collapsed router (every token picks experts 0 and 1 with p ≈ 1/2 each): aux = E · (1·½ + 1·½) = 8.
  auto collapsed = torch::full({6, e}, -30.0f);
  collapsed.narrow(1, 0, 2).fill_(0.0f);
  EXPECT_NEAR(model::load_balancing_loss({collapsed}, e, k).item<double>(), 8.0, 1e-4);
  // The attention-mask variant ignores padded tokens: padding rows routed elsewhere change nothing.
  auto mixed = collapsed.clone().view({2, 3, e});
  mixed[0][0].zero_();   // a padded token with a uniform router
  auto mask = torch::tensor({{0, 1, 1}, {1, 1, 1}}, torch::kInt64);
  EXPECT_NEAR(model::load_balancing_loss({mixed.view({6, e})}, e, k, mask).item<double>(), 8.0, 1e-4);
  auto stats = model::expert_statistics({collapsed}, e, k);
  EXPECT_NEAR(stats["moe/max_load"], 4.0, 1e-9);   // experts 0 and 1 take all slots: 4× uniform
  EXPECT_EQ(stats["moe/idle_experts"], 6.0);
}
