// Per-layer decoding state: keys/values for attention layers, conv + recurrent state for
// linear-attention (Gated DeltaNet) layers.
#pragma once
#include <torch/types.h>

#include <vector>

namespace gym::nn {

struct LayerCache {
  torch::Tensor k, v;               // attention: [B, nkv, capacity, D], filled in place up to Cache::length
  torch::Tensor conv_state;         // linear attention: [B, C, K] the last K pre-conv inputs (zeros before t = 0)
  torch::Tensor recurrent_state;    // linear attention: [B, nv, dk, dv] float32
};

struct Cache {
  std::vector<LayerCache> layers;   // one per decoder layer
  int64_t length = 0;               // positions consumed so far
  int64_t capacity = 0;             // attention buffers are preallocated to this many positions
};

}  // namespace gym::nn
