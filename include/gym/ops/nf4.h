// NF4 dequantize, bitsandbytes-exact (fixtures/nf4/README.md §"The exact float32 algorithm", step 5),
// with double quantization, and the dequantize-matmul of a frozen QLoRA base weight.
#pragma once
#include <torch/types.h>

#include "gym/ops/ops.h"

namespace gym::ops {

// One 4-bit weight's tensors, all on one device. numel values, blocks of `blocksize`.
struct Nf4Data {
  torch::Tensor packed;         // uint8 [(numel + 1) / 2] (any shape): element 2j in the high nibble of byte j
  torch::Tensor code;           // float32 [16]: the NF4 values
  torch::Tensor absmax;         // float32 [nblocks]; undefined when double-quantized:
  torch::Tensor absmax_codes;   //   uint8 [nblocks], 8-bit codes of absmax − offset
  torch::Tensor nested_map;     //   float32 [256], the signed dynamic map
  torch::Tensor nested_absmax;  //   float32 [ceil(nblocks / nested_blocksize)]
  float offset = 0.0f;
  int64_t numel = 0, blocksize = 64, nested_blocksize = 256;
};

// → [numel] of dtype (float32, bfloat16 or float16; float64 via float32) on packed's device:
// w = code[q] · absmax[block], absmax of a double-quantized block = (map[c]·nested) rounded, + offset rounded.
// CPU: a hand-written loop (one pass over the bytes); CUDA: one thread per byte.
torch::Tensor nf4_dequantize(const Nf4Data& q, torch::ScalarType dtype = torch::kFloat32, Impl impl = Impl::Auto);

// The reference: plain LibTorch (index_select, expand), float32, then cast.
torch::Tensor nf4_dequantize_reference(const Nf4Data& q, torch::ScalarType dtype = torch::kFloat32);

// x · dequant(W)ᵀ for a frozen weight W of shape [out_features, in_features] (numel = out·in):
// x [..., in] → [..., out] in x's dtype. Differentiable w.r.t. x only; backward dequantizes again
// (grad_x = grad · W), so no float copy of W outlives the call.
torch::Tensor nf4_matmul(const torch::Tensor& x, const Nf4Data& q, int64_t out_features, int64_t in_features);

}  // namespace gym::ops
