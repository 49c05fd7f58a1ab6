#include "gym/nn/norm.h"

#include "gym/core/profile.h"
#include "gym/ops/rms_norm.h"

namespace gym::nn {

namespace {
torch::Tensor normalized_f32(const torch::Tensor& x, double eps) {
  auto xf = x.to(torch::kFloat32);
  return xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
}
}  // namespace

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, bool unit_offset_, torch::TensorOptions options)
    : eps(eps_), unit_offset(unit_offset_) {
  weight = register_parameter("weight", unit_offset ? torch::zeros({dim}, options) : torch::ones({dim}, options));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  GYM_PROFILE("norms/elementwise");
  // float32 on the CPU: one op (ops/rms_norm.h), the same products; x̂ · (1 + w) for the unit offset
  if (ops::rms_norm_applies(x, weight)) return ops::rms_norm(x, unit_offset ? 1.0 + weight : weight, eps);
  auto xf = normalized_f32(x, eps);
  if (unit_offset) return (xf * (1.0 + weight.to(torch::kFloat32))).to(x.scalar_type());
  return weight * xf.to(x.scalar_type());   // HF's cast-then-multiply order
}

RMSNormGatedImpl::RMSNormGatedImpl(int64_t dim, double eps_, torch::TensorOptions options) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}, options));
}

torch::Tensor RMSNormGatedImpl::forward(const torch::Tensor& x, const torch::Tensor& gate) {
  auto y = weight * normalized_f32(x, eps).to(x.scalar_type());
  return (y * torch::silu(gate.to(torch::kFloat32))).to(x.scalar_type());
}

}  // namespace gym::nn
