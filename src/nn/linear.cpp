#include "gym/nn/linear.h"

#include <torch/nn/functional/dropout.h>
#include <torch/nn/functional/linear.h>
#include <torch/nn/init.h>

#include <cmath>

#include "gym/core/profile.h"
#include "gym/ops/lora_linear.h"
#include "gym/ops/small_m_linear.h"

namespace gym::nn {

LinearImpl::LinearImpl(int64_t in, int64_t out, torch::TensorOptions options) : in_features(in), out_features(out) {
  weight = register_parameter("weight", torch::empty({out, in}, options));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  const char* section = role == LinearRole::kHead ? "lm_head" : "projections";
  if (merged_weight_.defined() && lora_enabled) {
    GYM_PROFILE(section);
    return ops::linear(x, merged_weight_);
  }
  const bool lora_on = has_lora() && lora_enabled;
  const bool dropout_on = lora_dropout > 0 && is_training();   // the fused paths have no dropout
  if (lora_on && !quantized_ && !dropout_on && ops::small_m_linear_lora_applies(x, weight, lora_A->weight, lora_B->weight)) {
    // Decoding: the adapter inside the small-M kernel's one pass over W (no merged copy).
    GYM_PROFILE(section);
    return ops::small_m_linear_lora(x, weight, lora_A->weight, lora_B->weight, lora_scaling);
  }
  // With the adapter, the rows are flattened first ([N, in]): the adapter's GEMM then accumulates
  // into the base product, a fresh [N, out] tensor, in place (an out-of-place addmm copies y).
  const bool flat = lora_on && x.dim() > 2;
  const auto xin = flat ? x.reshape({-1, x.size(-1)}) : x;
  const auto unflatten = [&](const torch::Tensor& y) {
    if (!flat) return y;
    auto shape = x.sizes().vec();
    shape.back() = y.size(-1);
    return y.view(shape);
  };
  if (lora_on && !quantized_ && !dropout_on && ops::lora_linear_applies(xin, weight, lora_A->weight, lora_B->weight)) {
    // Training and prefill: one autograd op (∂x as one accumulating GEMM; bit-identical to below).
    return unflatten(ops::lora_linear(xin, weight, lora_A->weight, lora_B->weight, lora_scaling));
  }
  torch::Tensor y;
  {
    GYM_PROFILE(section);
    y = quantized_ ? quantized_->forward(xin) : ops::linear(xin, weight);
  }
  if (lora_on) {
    GYM_PROFILE("lora");
    auto h = xin;
    if (dropout_on) h = torch::nn::functional::dropout(h, torch::nn::functional::DropoutFuncOptions().p(lora_dropout).training(true));
    h = h.to(lora_A->weight.scalar_type());
    auto ha = ops::linear(h, lora_A->weight);   // [..., r]
    if (y.scalar_type() == ha.scalar_type() && y.dim() == 2) {
      // y += s · (h A^T) B^T as one accumulating GEMM into y (beta 1, alpha s): no [N, out]
      // temporaries for the product, the scaling and the sum, and autograd scales only the
      // [N, r] and [out, r] gradients by s. The scaling may round with the product (1 ulp).
      y.addmm_(ha, lora_B->weight.t(), 1.0, lora_scaling);
    } else {
      auto delta = ops::linear(ha, lora_B->weight);
      y = y + (delta * lora_scaling).to(y.scalar_type());
    }
  }
  return unflatten(y);
}

void LinearImpl::attach_lora(int64_t rank, double scaling, double dropout) {
  // float32 factors (as PEFT keeps them under a bf16 base), on the base weight's device.
  torch::Device device = torch::kCPU;
  if (weight.defined()) device = weight.device();
  else if (quantized_ && !quantized_->buffers.empty()) device = quantized_->buffers.front().second.device();
  const auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  auto a = torch::empty({rank, in_features}, opts);
  torch::nn::init::kaiming_uniform_(a, std::sqrt(5.0));
  lora_A = register_module("lora_A", LoraFactor(a));
  lora_B = register_module("lora_B", LoraFactor(torch::zeros({out_features, rank}, opts)));
  lora_scaling = scaling;
  lora_dropout = dropout;
}

torch::Tensor LinearImpl::lora_delta() const {
  return torch::mm(lora_B->weight.to(torch::kFloat32), lora_A->weight.to(torch::kFloat32)) * lora_scaling;
}

void LinearImpl::set_quantized_base(std::shared_ptr<QuantizedBase> base) {
  quantized_ = std::move(base);
  weight = torch::Tensor();
  // Drop the dense parameter so it is neither saved nor trained.
  if (parameters_.contains("weight")) parameters_.erase("weight");
  for (auto& [name, t] : quantized_->buffers) t = register_buffer(name, t);
}

torch::Tensor LinearImpl::dense_weight(torch::Dtype dtype) const {
  if (quantized_) return quantized_->dequantize(dtype);
  return weight.detach().to(dtype);
}

bool LinearImpl::merge_lora_for_inference() {
  if (!has_lora() || quantized_ || !weight.defined() || weight.scalar_type() != torch::kFloat32) return false;
  if (lora_dropout > 0 && is_training()) return false;   // the merged form has no dropout
  torch::NoGradGuard no_grad;
  // W + s·(B·A) as one GEMM into a fresh copy of W: no full-size temporaries for the product and
  // the scaling (rounding: the scaling is applied inside the GEMM).
  merged_weight_ = torch::addmm(weight.detach(), lora_B->weight.to(torch::kFloat32), lora_A->weight.to(torch::kFloat32), 1.0, lora_scaling);
  return true;
}

ScopedLoraMerge::ScopedLoraMerge(torch::nn::Module& root, bool enabled) {
  if (!enabled) return;
  for (auto& m : root.modules(/*include_self=*/false))
    if (auto* l = dynamic_cast<LinearImpl*>(m.get()); l && l->merge_lora_for_inference()) merged_.push_back(l);
}

ScopedLoraMerge::~ScopedLoraMerge() {
  for (auto* l : merged_) l->unmerge_lora();
}

}  // namespace gym::nn
