// The ops layer (DESIGN.md, seam "Ops"): per hot op a plain-LibTorch reference, a CPU twin (the
// path on CPU, mirroring the kernel's algorithm), a fused CUDA kernel, and one autograd function that
// dispatches on the input's device. Every tensor an op creates lives on its input's device.
//   selective_log_softmax.h  log p(chosen token) and entropy from logits, never a full log-softmax
//   policy_objective.h       GRPO / GSPO / GSPO-token clipped objective fused with the sequence log-ratio
//   nf4.h                    bitsandbytes NF4 dequantize (double quant) and dequantize-matmul
//   linear_cross_entropy.h   the SFT loss's LM head + cross-entropy in row chunks (CPU/any device)
//   rms_norm.h               RMSNorm as one autograd op (float32 CPU)
//   small_m_linear.h, sample.h, decode_attention.h   the CPU decoding kernels
#pragma once
#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>

namespace gym::ops {

// Which implementation an op runs. Auto: the CUDA kernel for CUDA tensors when gym was built with
// GYM_CUDA, a fused CPU path where an op has one (selective_log_softmax: float32 log-probs), else the
// CPU twin (LibTorch ops, on any device). Twin: always the twin (parity tests).
enum class Impl { Auto, Twin };

// True when this binary contains the CUDA kernels (built with GYM_CUDA on).
bool cuda_kernels_compiled();
// The CPU decoding kernels' instruction sets, checked once (false off x86-64).
bool cpu_has_avx2_fma();
bool cpu_has_avx512();   // AVX-512 F + DQ
// A random generator on `device` seeded with `seed` (CPU: LibTorch's mt19937 CPU
// generator; CUDA: LibTorch's Philox CUDA generator, so sampling never leaves the device). The same
// seed draws different numbers on CPU and CUDA. A CUDA device in a build without GYM_CUDA is a
// runtime_error.
at::Generator make_generator(torch::Device device, uint64_t seed);
// The state of the device's default generator (LoRA dropout draws from it) as a CPU uint8 tensor,
// and back. CPU: LibTorch's default CPU generator.
torch::Tensor default_generator_state(torch::Device device);
void set_default_generator_state(torch::Device device, const torch::Tensor& state);

}  // namespace gym::ops
