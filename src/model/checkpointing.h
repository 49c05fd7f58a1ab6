// Gradient checkpointing: a layer's activations are not kept; backward recomputes the layer.
#pragma once
#include "gym/model/qwen3.h"

namespace gym::model {

// Runs layer(x) without saving its activations; in backward the layer is run again (with the
// same RNG state, so LoRA dropout draws the same mask) and its gradients flow as usual.
torch::Tensor checkpointed_layer(DecoderLayerImpl& layer, const torch::Tensor& x, const torch::Tensor& mask,
                                 const torch::Tensor& cos, const torch::Tensor& sin,
                                 std::vector<torch::Tensor>* router_logits);

}  // namespace gym::model
