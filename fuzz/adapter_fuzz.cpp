// PEFT adapter loading (lora/adapter.cpp, lora/targets.cpp): adapter_config.json and
// adapter_model.safetensors into a two-layer module tree of gym's Linear.
// Input: adapter_config.json \0 adapter_model.safetensors.
#include "fuzz_util.h"
#include "gym/lora/adapter.h"
#include "gym/nn/linear.h"

namespace {
struct Attn : torch::nn::Module {
  Attn() {
    q_proj = register_module("q_proj", gym::nn::Linear(8, 8));
    v_proj = register_module("v_proj", gym::nn::Linear(8, 4));
  }
  gym::nn::Linear q_proj{nullptr}, v_proj{nullptr};
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& dir = gym::fuzz::scratch("adapter");
  const auto parts = gym::fuzz::split(data, size, 2);
  gym::fuzz::write(dir / "adapter_config.json", parts[0]);
  gym::fuzz::write(dir / "adapter_model.safetensors", parts[1]);
  torch::nn::Module root;
  auto layer = std::make_shared<torch::nn::Module>();
  layer->register_module("self_attn", std::make_shared<Attn>());
  auto layers = std::make_shared<torch::nn::Module>();
  layers->register_module("0", layer);
  auto model = std::make_shared<torch::nn::Module>();
  model->register_module("layers", layers);
  root.register_module("model", model);
  gym::fuzz::expect_clean([&] {
    (void)gym::lora::load_adapter(root, dir);
    (void)gym::lora::adapter_tensors(root);
  });
  return 0;
}
