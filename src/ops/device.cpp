#include "ops/device.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <ATen/Context.h>
#ifdef GYM_WITH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "gym/core/error.h"

#include <mutex>

namespace gym::ops {

bool cuda_kernels_compiled() {
#ifdef GYM_WITH_CUDA
  return true;
#else
  return false;
#endif
}

at::Generator make_generator(torch::Device device, uint64_t seed) {
  if (device.is_cpu()) return at::detail::createCPUGenerator(seed);
#ifdef GYM_WITH_CUDA
  if (device.is_cuda()) {
    auto g = at::cuda::detail::createCUDAGenerator(device.has_index() ? device.index() : -1);
    g.set_current_seed(seed);
    return g;
  }
#endif
  runtime_error("no random generator for device {} in this build (GYM_CUDA {})", device.str(), cuda_kernels_compiled() ? "on" : "off");
}

namespace {
at::Generator default_generator(torch::Device device) {
  if (device.is_cpu()) return at::detail::getDefaultCPUGenerator();
#ifdef GYM_WITH_CUDA
  if (device.is_cuda()) return at::cuda::detail::getDefaultCUDAGenerator(device.has_index() ? device.index() : -1);
#endif
  runtime_error("no default random generator for device {} in this build", device.str());
}
}  // namespace

torch::Tensor default_generator_state(torch::Device device) {
  auto g = default_generator(device);
  std::lock_guard<std::mutex> lock(g.mutex());
  return g.get_state();
}

void set_default_generator_state(torch::Device device, const torch::Tensor& state) {
  auto g = default_generator(device);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(state);
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
