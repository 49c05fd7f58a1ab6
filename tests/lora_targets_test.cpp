#include <gtest/gtest.h>

#include "gym/core/error.h"
#include "gym/lora/targets.h"

using gym::lora::is_target;

TEST(LoraTargets, PeftNameMatching) {
  const std::vector<std::string> all = {"all"};
  EXPECT_TRUE(is_target("model.layers.0.self_attn.q_proj", all));
  EXPECT_TRUE(is_target("model.layers.1.mlp.experts.3.down_proj", all));
  EXPECT_FALSE(is_target("lm_head", all));
  EXPECT_FALSE(is_target("model.layers.0.mlp.gate", all, /*is_router=*/true));   // routers only when named

  const std::vector<std::string> qv = {"q_proj", "v_proj"};
  EXPECT_TRUE(is_target("model.layers.0.self_attn.q_proj", qv));
  EXPECT_FALSE(is_target("model.layers.0.self_attn.k_proj", qv));
  EXPECT_FALSE(is_target("model.layers.0.self_attn.xq_proj", qv));   // whole components only

  const std::vector<std::string> router = {"gate"};
  EXPECT_TRUE(is_target("model.layers.0.mlp.gate", router, true));
  EXPECT_FALSE(is_target("model.layers.0.mlp.gate_proj", router));

  const std::vector<std::string> experts = {"experts.*.gate_proj"};
  EXPECT_TRUE(is_target("model.layers.2.mlp.experts.7.gate_proj", experts));
  EXPECT_FALSE(is_target("model.layers.2.mlp.gate_proj", experts));
  EXPECT_FALSE(is_target("model.layers.2.mlp.experts.7.up_proj", experts));
  EXPECT_TRUE(is_target("model.layers.0.mlp.experts.1.up_proj", {"layers.0.*"}));
  EXPECT_FALSE(is_target("model.layers.10.mlp.experts.1.up_proj", {"layers.0.*"}));
}

TEST(LoraTargets, ScalingAndAdapterConfig) {
  EXPECT_DOUBLE_EQ(gym::lora::lora_scaling(16, 8, false), 2.0);
  EXPECT_DOUBLE_EQ(gym::lora::lora_scaling(16, 4, true), 8.0);
  gym::config::LoraArgs a;
  a.rank = 4;
  a.alpha = 8;
  a.dropout = 0.05;
  auto j = gym::lora::adapter_config_json(a, "base", {"q_proj", "v_proj"});
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["r"], 4);
  auto back = gym::lora::lora_args_from_adapter_config(j, "adapter_config.json");
  EXPECT_EQ(back.rank, 4);
  EXPECT_DOUBLE_EQ(back.alpha, 8);
  EXPECT_EQ(back.target, (std::vector<std::string>{"q_proj", "v_proj"}));
  j["use_dora"] = true;
  EXPECT_THROW(gym::lora::lora_args_from_adapter_config(j, "x/adapter_config.json"), gym::Error);
  EXPECT_EQ(gym::lora::peft_name("model.layers.0.self_attn.q_proj", "lora_A"),
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
}
