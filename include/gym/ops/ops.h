// The ops layer (DESIGN.md, seam "Ops"): per hot op a plain-LibTorch reference, a CPU twin (the
// path on CPU, mirroring the kernel's algorithm), a fused CUDA kernel, and one autograd function that
// dispatches on the input's device. Every tensor an op creates lives on its input's device.
//   selective_log_softmax.h  log p(chosen token) and entropy from logits, never a full log-softmax
//   policy_objective.h       GRPO / GSPO / GSPO-token clipped objective fused with the sequence log-ratio
//   nf4.h                    bitsandbytes NF4 dequantize (double quant) and dequantize-matmul
#pragma once

namespace gym::ops {

// Which implementation an op runs. Auto: the CUDA kernel for CUDA tensors when gym was built with
// GYM_CUDA, else the CPU twin (LibTorch ops, on any device). Twin: always the twin (parity tests).
enum class Impl { Auto, Twin };

// True when this binary contains the CUDA kernels (built with GYM_CUDA on).
bool cuda_kernels_compiled();

}  // namespace gym::ops
