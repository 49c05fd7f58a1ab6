#include "model/checkpointing.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>

namespace gym::model {

namespace {

LayerInputs saved_inputs(const std::vector<torch::Tensor>& saved, const torch::Tensor& pad_mask) {
  LayerInputs in;
  in.attn_mask = saved[1], in.cos = saved[2], in.sin = saved[3], in.pad_mask = pad_mask;
  return in;
}

// An autograd Function's inputs must be defined tensors: the optional padding mask travels in saved_data.
torch::Tensor saved_pad_mask(torch::autograd::AutogradContext* ctx) {
  auto it = ctx->saved_data.find("pad_mask");
  return it == ctx->saved_data.end() ? torch::Tensor() : it->second.toTensor();
}

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, torch::Tensor attn_mask,
                               torch::Tensor cos, torch::Tensor sin, int64_t layer_ptr, const torch::Tensor* pad_mask) {
    auto gen = at::detail::getDefaultCPUGenerator();
    ctx->saved_data["rng"] = gen.get_state();
    ctx->saved_data["layer"] = layer_ptr;
    if (pad_mask->defined()) ctx->saved_data["pad_mask"] = *pad_mask;
    ctx->save_for_backward({x, attn_mask, cos, sin});
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(layer_ptr);
    torch::NoGradGuard no_grad;
    return layer->forward(x, saved_inputs({x, attn_mask, cos, sin}, *pad_mask), nullptr, nullptr);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    auto gen = at::detail::getDefaultCPUGenerator();
    const auto current = gen.get_state();
    gen.set_state(ctx->saved_data["rng"].toTensor());
    auto x = saved[0].detach().requires_grad_(true);
    {
      torch::AutoGradMode enable(true);
      auto out = layer->forward(x, saved_inputs(saved, saved_pad_mask(ctx)), nullptr, nullptr);
      torch::autograd::backward({out}, {grads[0]});
    }
    gen.set_state(current);
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};   // x, masks, cos, sin, layer, pad_mask
  }
};

}  // namespace

torch::Tensor checkpointed_layer(DecoderLayerImpl& layer, const torch::Tensor& x, const LayerInputs& in) {
  // Like HF's enable_input_require_grads: with a frozen embedding the first layer's input needs
  // requires_grad, otherwise backward never reaches the recomputation (and the LoRA weights).
  auto input = x.requires_grad() ? x : x.detach().requires_grad_(true);
  return CheckpointFunction::apply(input, in.attn_mask, in.cos, in.sin, reinterpret_cast<int64_t>(&layer), &in.pad_mask);
}

}  // namespace gym::model
