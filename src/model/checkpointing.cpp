#include "model/checkpointing.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>

namespace gym::model {

namespace {

LayerInputs saved_inputs(const std::vector<torch::Tensor>& saved) {
  LayerInputs in;
  in.attn_mask = saved[1], in.cos = saved[2], in.sin = saved[3], in.pad_mask = saved[4];
  return in;
}

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, torch::Tensor attn_mask,
                               torch::Tensor cos, torch::Tensor sin, torch::Tensor pad_mask, int64_t layer_ptr) {
    auto gen = at::detail::getDefaultCPUGenerator();
    ctx->saved_data["rng"] = gen.get_state();
    ctx->saved_data["layer"] = layer_ptr;
    ctx->save_for_backward({x, attn_mask, cos, sin, pad_mask});
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(layer_ptr);
    torch::NoGradGuard no_grad;
    return layer->forward(x, saved_inputs({x, attn_mask, cos, sin, pad_mask}), nullptr, nullptr);
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
      auto out = layer->forward(x, saved_inputs(saved), nullptr, nullptr);
      torch::autograd::backward({out}, {grads[0]});
    }
    gen.set_state(current);
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpointed_layer(DecoderLayerImpl& layer, const torch::Tensor& x, const LayerInputs& in) {
  // Like HF's enable_input_require_grads: with a frozen embedding the first layer's input needs
  // requires_grad, otherwise backward never reaches the recomputation (and the LoRA weights).
  auto input = x.requires_grad() ? x : x.detach().requires_grad_(true);
  return CheckpointFunction::apply(input, in.attn_mask, in.cos, in.sin, in.pad_mask, reinterpret_cast<int64_t>(&layer));
}

}  // namespace gym::model
