// Gradient checkpointing: a layer's activations are not kept; backward recomputes the layer.
#pragma once
#include "gym/model/decoder.h"

namespace gym::model {

// Runs layer(x) without saving its activations; in backward the layer is run again (with the
// same RNG state, so LoRA dropout draws the same mask) and its gradients flow as usual.
// Sparse (MoE) layers are not checkpointed: their router logits feed the aux loss.
torch::Tensor checkpointed_layer(DecoderLayerImpl& layer, const torch::Tensor& x, const LayerInputs& in);

}  // namespace gym::model
