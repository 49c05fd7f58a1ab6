// The one linear layer every projection uses: y = x·Wᵀ, with an optional LoRA update and an
// optional quantized base (the NF4 path installs `quantized_base`).
#pragma once
#include <torch/nn/module.h>
#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gym::nn {

// Holds one LoRA factor as a parameter named "weight", so names read "...q_proj.lora_A.weight".
struct LoraFactorImpl : torch::nn::Module {
  explicit LoraFactorImpl(torch::Tensor w) { weight = register_parameter("weight", std::move(w)); }
  torch::Tensor weight;
};
TORCH_MODULE(LoraFactor);

// A frozen 4-bit base weight: forward(x) computes x·Wᵀ without a float copy kept around,
// dequantize() materialises W [out, in] (for export and merging). `buffers` are the tensors the
// closures hold (packed codes, absmax, ...): the layer registers them as its buffers, so .to(device)
// moves them in place (Module::to replaces a buffer's data, and the closures share its TensorImpl)
// and named_buffers() / state dicts see them.
struct QuantizedBase {
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  std::function<torch::Tensor(torch::Dtype)> dequantize;
  double bits_per_param = 0.0;
  std::vector<std::pair<std::string, torch::Tensor>> buffers;   // name (no dots) → tensor
};

// What a linear layer is for, set by the module that owns it. Quantization, LoRA's "all" and the
// memory estimate ask the role, never the layer's name.
enum class LinearRole {
  kProjection,   // attention / MLP / expert / linear-attention projections
  kRouter,       // MoE router: [E, H], kept in full precision, LoRA only when named
  kGate,         // a scalar gate such as Qwen3-Next's shared_expert_gate [1, H], kept in full precision
  kHead,         // lm_head
};

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, torch::TensorOptions options = {});

  // x: [..., in] → [..., out]
  torch::Tensor forward(const torch::Tensor& x);

  // LoRA: A [r, in] Kaiming-uniform (a = √5, as PEFT), B [out, r] zeros; scaling = alpha/r or alpha/√r.
  void attach_lora(int64_t rank, double scaling, double dropout);
  bool has_lora() const { return !lora_A.is_empty(); }
  torch::Tensor lora_delta() const;   // B·A·scaling [out, in] in float32

  // Replaces the dense weight by a quantized base (the weight parameter is removed).
  void set_quantized_base(std::shared_ptr<QuantizedBase> base);
  const std::shared_ptr<QuantizedBase>& quantized_base() const { return quantized_; }
  torch::Tensor dense_weight(torch::Dtype dtype) const;   // W [out, in], dequantized when needed

  int64_t in_features, out_features;
  LinearRole role = LinearRole::kProjection;
  torch::Tensor weight;          // [out, in]; undefined when the base is quantized
  LoraFactor lora_A{nullptr};    // registered only when attached
  LoraFactor lora_B{nullptr};
  double lora_scaling = 0.0;
  double lora_dropout = 0.0;
  bool lora_enabled = true;      // switched off to get the reference (base) policy

  // Inference with the adapter merged: forward uses W + B·A·scaling (one matmul instead of three)
  // while lora_enabled, the base W when it is switched off. Float32 dense bases only (a bf16 or
  // NF4 base would round the delta); returns whether it merged. The weight itself is not touched.
  bool merge_lora_for_inference();
  void unmerge_lora() { merged_weight_ = torch::Tensor(); }

 private:
  std::shared_ptr<QuantizedBase> quantized_;
  torch::Tensor merged_weight_;   // defined while merged
};
TORCH_MODULE(Linear);

// Merges every float32 LoRA layer of a module tree for the scope (generation: the adapter is frozen
// while sampling). Rounding: x·(W + ΔW) instead of x·W + (x·Aᵀ)·Bᵀ·s; docs/performance.md measures it.
class ScopedLoraMerge {
 public:
  explicit ScopedLoraMerge(torch::nn::Module& root, bool enabled = true);
  ~ScopedLoraMerge();
  ScopedLoraMerge(const ScopedLoraMerge&) = delete;
  ScopedLoraMerge& operator=(const ScopedLoraMerge&) = delete;

 private:
  std::vector<LinearImpl*> merged_;
};

}  // namespace gym::nn
