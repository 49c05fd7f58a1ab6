// Device placement: the model's forward and the training losses run on LibTorch's meta device
// (shapes and dtypes only, no data), so any tensor created on the CPU by mistake on these paths
// (a mask, a position table, an index, a LoRA factor) fails with a device mismatch.
// LibTorch's C++ library lacks meta kernels for some ops (PyTorch registers them from Python, in
// torch/_meta_registrations.py): this file registers shape-only ones for those on gym's paths, so
// the check runs to the end on 1.13 and 2.x alike. An op without one fails the test by name.
#include <gtest/gtest.h>
#include <ATen/ExpandUtils.h>
#include <torch/cuda.h>
#include <torch/library.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli_util.h"
#include "test_util.h"
#include "gym/config/config.h"
#include "gym/core/fs.h"
#include "gym/model/create.h"
#include "gym/model/loader.h"
#include "gym/nn/linear.h"
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
    FAIL() << arch << ": an op on the path has no meta kernel in this LibTorch (" << what.substr(0, what.find('\n'))
           << "); add its shape function to the registrations at the end of this file";
  }
}

// Shape-only meta kernels of ops LibTorch's C++ library has none for.
at::Tensor meta_like(const at::Tensor& self) { return at::empty(self.sizes(), self.options()); }

at::Tensor meta_index_select(const at::Tensor& self, int64_t dim, const at::Tensor& index) {
  auto sizes = self.sizes().vec();
  if (!sizes.empty()) sizes[c10::maybe_wrap_dim(dim, self.dim())] = index.numel();
  return at::empty(sizes, self.options());
}

at::Tensor meta_where(const at::Tensor& cond, const at::Tensor& self, const at::Tensor& other) {
  const auto sizes = at::infer_size(at::infer_size(cond.sizes(), self.sizes()), other.sizes());
  return at::empty(sizes, self.options().dtype(at::result_type(self, other)));
}

// A non-transposed convolution (Gated DeltaNet's causal depthwise conv1d): [N, C_out, L_out...].
at::Tensor meta_convolution(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& /*bias*/,
                            at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, bool transposed,
                            at::IntArrayRef /*output_padding*/, int64_t /*groups*/) {
  TORCH_CHECK(!transposed, "meta_convolution: transposed convolutions are not on gym's paths");
  std::vector<int64_t> sizes{input.size(0), weight.size(0)};
  for (int64_t d = 2; d < input.dim(); ++d) {
    const auto i = static_cast<size_t>(d - 2);
    sizes.push_back((input.size(d) + 2 * padding[i] - dilation[i] * (weight.size(d) - 1) - 1) / stride[i] + 1);
  }
  return at::empty(sizes, input.options());
}

// A X = B (Gated DeltaNet's chunked form): B's matrix shape over the broadcast batch dims.
at::Tensor meta_solve_triangular(const at::Tensor& a, const at::Tensor& b, bool /*upper*/, bool /*left*/, bool /*unitriangular*/) {
  auto sizes = at::infer_size(a.sizes().slice(0, a.dim() - 2), b.sizes().slice(0, b.dim() - 2));
  sizes.push_back(b.size(-2));
  sizes.push_back(b.size(-1));
  return at::empty(sizes, b.options());
}

TORCH_LIBRARY_IMPL(aten, Meta, m) {
  m.impl("linalg_solve_triangular", TORCH_FN(meta_solve_triangular));
  m.impl("convolution_overrideable", TORCH_FN(meta_convolution));
  m.impl("index_select", TORCH_FN(meta_index_select));
  m.impl("abs", TORCH_FN(meta_like));
  m.impl("where.self", TORCH_FN(meta_where));
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

// A QLoRA base's packed codes and block statistics are the layers' buffers: named_buffers() lists
// them, .to(device) moves them (and the quantized forward, which holds the same tensors, follows),
// and LoRA attached afterwards lands on that device.
namespace {
model::CausalLM tiny_qlora_base(const std::string& name) {
  const auto d = test::fresh_dir(name);
  model::create_model("qwen3", "tiny", d / "m", "bytes", 3);
  return model::load_model(d / "m", torch::kFloat32, model::QuantLoad{4, 64, true});
}
}  // namespace

TEST(DevicePlacement, Nf4CodesAndAbsmaxAreRegisteredBuffersTheForwardReads) {
  auto m = tiny_qlora_base("placement_nf4");
  int64_t quantized = 0, codes = 0, absmax = 0, nested = 0;
  for (auto& item : m->named_modules("", false))
    if (auto* lin = item.value()->as<nn::LinearImpl>(); lin && lin->quantized_base()) ++quantized;
  for (const auto& b : m->named_buffers()) {
    const auto& k = b.key();
    auto ends = [&](const std::string& tail) { return k.size() > tail.size() && k.compare(k.size() - tail.size(), tail.size(), tail) == 0; };
    if (ends(".weight_nf4")) {
      ++codes;
      EXPECT_EQ(b.value().scalar_type(), torch::kUInt8) << k;
    }
    if (ends(".weight_absmax")) {
      ++absmax;
      EXPECT_EQ(b.value().scalar_type(), torch::kUInt8) << k << " (double quantization: 8-bit codes)";
    }
    if (ends(".weight_nested_absmax")) {
      ++nested;
      EXPECT_EQ(b.value().scalar_type(), torch::kFloat32) << k;
    }
  }
  ASSERT_GT(quantized, 0);
  EXPECT_EQ(codes, quantized);
  EXPECT_EQ(absmax, quantized);
  EXPECT_EQ(nested, quantized);

  // The forward reads the registered tensors: changing a buffer in place changes the output.
  auto ids = torch::tensor({{1, 5, 9, 13}}, torch::kInt64);
  torch::NoGradGuard ng;
  auto before = m->lm_logits(m->hidden_states(ids, {}).hidden);
  for (auto& b : m->named_buffers())
    if (b.key().find(".weight_nf4") != std::string::npos) b.value().bitwise_xor_(0x11);
  auto after = m->lm_logits(m->hidden_states(ids, {}).hidden);
  EXPECT_GT((before - after).abs().max().item<double>(), 1e-3) << "the quantized forward does not read the registered codes";

}

// Module::to moves every registered buffer (set_data on the tensor the closures hold). LibTorch
// cannot move CPU tensors to the meta device in place, so the move itself is checked on a GPU.
TEST(DevicePlacement, Nf4BuffersMoveToTheGpuWithTheModel) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: the move to cuda and LoRA placed after it are checked on a GPU";
  auto m = tiny_qlora_base("placement_nf4_gpu");
  auto ids = torch::tensor({{1, 5, 9, 13}}, torch::kInt64);
  torch::NoGradGuard ng;
  auto before = m->lm_logits(m->hidden_states(ids, {}).hidden);
  const torch::Device cuda(torch::kCUDA, 0);
  m->to(cuda);
  for (const auto& b : m->named_buffers()) ASSERT_TRUE(b.value().is_cuda()) << b.key() << " stayed on " << b.value().device();
  config::LoraArgs la;
  la.rank = 4, la.alpha = 8;
  lora::inject(*m, la);   // B = 0: the output is the base's
  for (const auto& p : m->named_parameters()) ASSERT_TRUE(p.value().is_cuda()) << p.key() << " is on " << p.value().device();
  auto on_gpu = m->lm_logits(m->hidden_states(ids.to(cuda), {}).hidden).cpu();
  EXPECT_LT((on_gpu - before).abs().max().item<double>(), 1e-3);
}

namespace {
std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

// `device`: auto is cpu on a machine without CUDA (the same adapter, byte for byte); a CUDA device
// that is not there, or a malformed value, is a config error naming the key before output_dir exists.
TEST(DevicePlacement, DeviceKeyChoosesResolvesAndRefuses) {
  const auto d = test::fresh_dir("placement_key");
  const std::string cfg = (source_dir() / "configs/tiny/sft_tiny.yaml").string();
  const std::string common = " --max_steps 3 --save_steps 100 --logging_steps 1 --plot_loss false";
  auto bad = test::run_gym("validate " + cfg + " --device gpu0");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("device"), std::string::npos) << bad.output;
  EXPECT_EQ(test::count_error_lines(bad.output), 1) << bad.output;

  if (!torch::cuda::is_available()) {
    for (const char* dev : {"cuda", "cuda:1"}) {
      auto r = test::run_gym("train " + cfg + common + " --device " + dev + " --output_dir " + (d / dev).string());
      EXPECT_EQ(r.exit_code, 2) << r.output;
      EXPECT_NE(r.output.find("device: '" + std::string(dev) + "' needs a CUDA device"), std::string::npos) << r.output;
      EXPECT_FALSE(std::filesystem::exists(d / dev)) << "output_dir created before the device was checked";
    }
    auto cpu = test::run_gym("train " + cfg + common + " --device cpu --output_dir " + (d / "cpu").string());
    ASSERT_EQ(cpu.exit_code, 0) << cpu.output;
    auto autod = test::run_gym("train " + cfg + common + " --device auto --output_dir " + (d / "auto").string());
    ASSERT_EQ(autod.exit_code, 0) << autod.output;
    const auto a = file_bytes(d / "cpu" / "adapter_model.safetensors"), b = file_bytes(d / "auto" / "adapter_model.safetensors");
    EXPECT_FALSE(a.empty());
    EXPECT_EQ(a, b) << "device: auto on a CPU-only machine must train exactly as device: cpu";
  } else {
    auto r = test::run_gym("train " + cfg + common + " --device cuda:" + std::to_string(torch::cuda::device_count()) + " --output_dir " +
                           (d / "missing").string());
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;
  }
}
