// Without GYM_CUDA the launchers are defined here and report that the kernels are not compiled in,
// so the ATen glue (which only calls them for CUDA tensors of a CUDA build) compiles and links in the
// CPU build unchanged.
#ifndef GYM_WITH_CUDA
#include "ops/kernels/launchers.h"

namespace gym::ops::kernels {

namespace {
const char* kNoCuda = "gym was built without GYM_CUDA";
}

std::string launch_selective_log_softmax_forward(const LogitsView&, const int64_t*, double, void*, void*, void*, void*) { return kNoCuda; }
std::string launch_selective_log_softmax_backward(const LogitsView&, const int64_t*, double, const void*, const void*, const void*,
                                                  const void*, void*, Dtype, void*) {
  return kNoCuda;
}
std::string launch_policy_objective(const PolicyObjectiveArgs&, Dtype, const void*, const void*, const void*, const void*,
                                    const void*, void*, void*, void*, void*) {
  return kNoCuda;
}
std::string launch_nf4_dequantize(const Nf4View&, void*, Dtype, void*) { return kNoCuda; }

}  // namespace gym::ops::kernels
#endif
