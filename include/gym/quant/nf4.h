// bitsandbytes-exact NF4 (4-bit NormalFloat) blockwise quantization with double quantization.
// Facts: specs/nf4_dist_perf.md §1, fixtures/nf4/README.md (the exact float32 algorithm).
#pragma once
#include <torch/types.h>

#include <functional>
#include <map>

#include <string>
#include <vector>

namespace gym::quant {

// 8-bit blockwise quantization with the signed dynamic map (used for the nested absmax).
struct Blockwise8 {
  torch::Tensor codes;    // uint8 [n]
  torch::Tensor absmax;   // float32 [ceil(n / blocksize)] (the tail block's clamped to ≥ 1e-38)
  int64_t blocksize = 256;
};
Blockwise8 quantize_blockwise_8bit(const torch::Tensor& x, int64_t blocksize = 256);
torch::Tensor dequantize_blockwise_8bit(const Blockwise8& q);   // float32 [n]

struct Nf4Weight {
  torch::Tensor packed;          // uint8 [(n + 1) / 2, 1]: even element in the high nibble
  torch::Tensor absmax;          // float32 [nblocks] (without double quantization)
  Blockwise8 nested;             // with double quantization: codes of absmax − offset
  float nested_offset = 0.0f;
  bool double_quant = false;
  int64_t blocksize = 64;
  std::vector<int64_t> shape;    // the weight's shape, e.g. [out, in]
  int64_t numel() const;
  torch::Tensor block_absmax() const;   // float32 [nblocks], reconstructed when double-quantized
};

// w: any float tensor; blocksize ∈ {32, 64, ..., 4096}.
Nf4Weight quantize_nf4(const torch::Tensor& w, int64_t blocksize = 64, bool double_quant = true);
torch::Tensor dequantize_nf4(const Nf4Weight& q, torch::Dtype dtype = torch::kFloat32);   // shape q.shape

// Stored bits per quantized parameter: packed codes plus per-block statistics (not the code
// tables or the quant-state JSON). 4.5 without double quantization, ≈ 4.127 with it (block 64).
double nf4_bits_per_param(const Nf4Weight& q);
double nf4_bits_per_param(int64_t numel, int64_t blocksize, bool double_quant);

// The quant_state.bitsandbytes__nf4 JSON text as bitsandbytes' QuantState.as_dict(packed=True) writes it.
std::string quant_state_json(const Nf4Weight& q, const std::string& dtype = "float32");

}  // namespace gym::quant

namespace gym::quant {

// x · dequant(W)ᵀ in x's dtype for a frozen 4-bit weight. The autograd function saves only the
// packed weight (by reference) and re-dequantizes in backward: grad_x = grad · dequant(W); the
// weight gets no gradient and no float copy of it outlives the call.
torch::Tensor nf4_linear(const torch::Tensor& x, const Nf4Weight& w);

// bitsandbytes' serialized tensors of one weight P: P (packed), P.absmax, P.quant_map,
// P.nested_absmax, P.nested_quant_map, P.quant_state.bitsandbytes__nf4.
std::map<std::string, torch::Tensor> nf4_to_bnb_tensors(const std::string& weight_name, const Nf4Weight& w);
// Reads them back (`get` returns an undefined tensor when a name is absent), validating the
// quant type, shape and blocksize against the data; errors name the tensor.
Nf4Weight nf4_from_bnb_tensors(const std::string& weight_name, const std::function<torch::Tensor(const std::string&)>& get);

}  // namespace gym::quant
