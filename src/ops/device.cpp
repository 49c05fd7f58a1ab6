#include "ops/device.h"

#ifdef GYM_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

#include "gym/core/error.h"

namespace gym::ops {

bool cuda_kernels_compiled() {
#ifdef GYM_WITH_CUDA
  return true;
#else
  return false;
#endif
}

namespace detail {

bool use_kernel(const torch::Tensor& t, Impl impl) { return impl == Impl::Auto && cuda_kernels_compiled() && t.is_cuda(); }

void* cuda_stream(const torch::Tensor& t) {
#ifdef GYM_WITH_CUDA
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
#else
  runtime_error("ops: a CUDA kernel was requested for a tensor on {}, but gym was built without GYM_CUDA", t.device().str());
#endif
}

kernels::Dtype kernel_dtype(torch::ScalarType s) {
  switch (s) {
    case torch::kFloat32: return kernels::Dtype::F32;
    case torch::kFloat64: return kernels::Dtype::F64;
    case torch::kBFloat16: return kernels::Dtype::BF16;
    case torch::kFloat16: return kernels::Dtype::F16;
    default: runtime_error("ops: no kernel for dtype {}", std::string(c10::toString(s)));
  }
}

void check_launch(const std::string& status) {
  if (!status.empty()) runtime_error("ops: CUDA kernel failed: {}", status);
}

std::string shape_text(const torch::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

}  // namespace detail
}  // namespace gym::ops
