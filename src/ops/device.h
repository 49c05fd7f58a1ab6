// Dispatch helpers of the ops' ATen glue: whether a call runs a CUDA kernel, the kernel dtype of a
// tensor, the current CUDA stream (the only place that needs CUDA headers, and only with GYM_WITH_CUDA).
#pragma once
#include <torch/types.h>

#include <string>

#include "gym/ops/ops.h"
#include "ops/kernels/launchers.h"

namespace gym::ops::detail {

// t is a CUDA tensor, the kernels are compiled in and impl is Auto.
bool use_kernel(const torch::Tensor& t, Impl impl);
// The current CUDA stream of t's device as a cudaStream_t (void*); a runtime_error without CUDA.
void* cuda_stream(const torch::Tensor& t);
kernels::Dtype kernel_dtype(torch::ScalarType s);
// Throws gym::runtime_error naming the op when a launcher returned a message.
void check_launch(const std::string& status);
std::string shape_text(const torch::Tensor& t);

}  // namespace gym::ops::detail
