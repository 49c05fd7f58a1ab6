#include "model/checkpointing.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>

namespace gym::model {

namespace {

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, torch::Tensor mask,
                               torch::Tensor cos, torch::Tensor sin, int64_t layer_ptr) {
    auto gen = at::detail::getDefaultCPUGenerator();
    ctx->saved_data["rng"] = gen.get_state();
    ctx->saved_data["layer"] = layer_ptr;
    ctx->save_for_backward({x, mask, cos, sin});
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(layer_ptr);
    torch::NoGradGuard no_grad;
    return layer->forward(x, mask, cos, sin, nullptr, nullptr);
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
      auto out = layer->forward(x, saved[1], saved[2], saved[3], nullptr, nullptr);
      torch::autograd::backward({out}, {grads[0]});
    }
    gen.set_state(current);
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpointed_layer(DecoderLayerImpl& layer, const torch::Tensor& x, const torch::Tensor& mask,
                                 const torch::Tensor& cos, const torch::Tensor& sin,
                                 std::vector<torch::Tensor>* router_logits) {
  (void)router_logits;   // MoE layers are not checkpointed (their router logits feed the aux loss)
  // Like HF's enable_input_require_grads: with a frozen embedding the first layer's input needs
  // requires_grad, otherwise backward never reaches the recomputation (and the LoRA weights).
  auto input = x.requires_grad() ? x : x.detach().requires_grad_(true);
  return CheckpointFunction::apply(input, mask, cos, sin, reinterpret_cast<int64_t>(&layer));
}

}  // namespace gym::model
