// Device placement: the model's forward and the training losses run on LibTorch's meta device
// (shapes and dtypes only, no data), so any tensor created on the CPU by mistake on these paths
// (a mask, a position table, an index, a LoRA factor) fails with a device mismatch.
// LibTorch 1.13 lacks meta kernels for some ops the model uses (abs, where, index_select, ...): a
// missing kernel ends the check there with a skip naming the op; LibTorch 2.x (scripts/check_cuda.sh
// runs this suite against 2.6) has them and runs every path to the end. A device mismatch always fails.
#include <gtest/gtest.h>

#include "gym/config/config.h"
#include "gym/lora/adapter.h"
#include "gym/model/config.h"
#include "gym/model/family.h"
#include "gym/model/score.h"
#include "gym/rl/logprobs.h"
#include "recipes/losses.h"

using namespace gym;

namespace {

const torch::Device kMeta(torch::kMeta);

// Forward + losses of a tiny model of `arch` built on the meta device with LoRA on every linear layer.
void forward_and_losses_on_meta(model::ArchConfig cfg) {
  auto m = model::build_model(cfg, torch::TensorOptions().device(kMeta));
  config::LoraArgs la;
  la.rank = 4, la.alpha = 8;
  lora::inject(*m, la);
  for (const auto& p : m->named_parameters()) ASSERT_TRUE(p.value().device().is_meta()) << p.key() << " is on " << p.value().device();
  for (const auto& b : m->named_buffers()) ASSERT_TRUE(b.value().device().is_meta()) << b.key() << " is on " << b.value().device();

  const int64_t batch = 2, seq = 12;
  const auto i64 = torch::TensorOptions().device(kMeta).dtype(torch::kInt64);
  auto ids = torch::empty({batch, seq}, i64);
  auto mask = torch::empty({batch, seq}, i64);
  model::ForwardOptions fo;
  fo.attention_mask = mask;
  fo.output_router_logits = cfg.is_moe();
  auto out = m->hidden_states(ids, fo);                                   // [B, T, H]
  EXPECT_TRUE(out.hidden.device().is_meta());
  auto logits = m->lm_logits(out.hidden).to(torch::kFloat32);             // [B, T, V]
  EXPECT_TRUE(logits.device().is_meta());
  EXPECT_EQ(logits.sizes(), torch::IntArrayRef({batch, seq, cfg.vocab_size}));
  // RL: per-token log-probs of the sampled tokens; MoE: the balancing loss.
  auto logp = rl::selective_log_softmax(logits, ids, 0.7);               // [B, T]
  EXPECT_TRUE(logp.device().is_meta());
  if (cfg.is_moe()) {
    ASSERT_FALSE(out.router_logits.empty());
    auto aux = model::load_balancing_loss(out.router_logits, cfg.num_experts, cfg.num_experts_per_tok, mask);
    EXPECT_TRUE(aux.device().is_meta());
  }
}

void expect_placed(const std::string& arch, const model::ArchConfig& cfg) {
  SCOPED_TRACE(arch);
  try {
    forward_and_losses_on_meta(cfg);
  } catch (const c10::NotImplementedError& e) {
    const std::string what = e.what_without_backtrace();
    GTEST_SKIP() << arch << ": this LibTorch has no meta kernel for an op on the path (" << what.substr(0, what.find('\n'))
                 .substr(0, what.find(". ")) << "); LibTorch 2.x runs it to the end";
  }
}

}  // namespace

TEST(DevicePlacement, DenseForwardAndLossesOnTheMetaDevice) { expect_placed("qwen3", model::preset_arch("qwen3", "tiny")); }

// The MoE dispatch groups tokens by expert with counts read on the host (as every grouped MoE does),
// which a meta tensor cannot give; the Next check therefore uses dense MLPs, covering Gated DeltaNet,
// gated attention, partial RoPE and the (1 + w) norms.
TEST(DevicePlacement, NextLayersForwardAndLossesOnTheMetaDevice) {
  auto cfg = model::preset_arch("qwen3_next", "tiny");
  cfg.num_experts = 0;
  expect_placed("qwen3_next (dense MLPs)", cfg);
}
