// LoRA linear as one autograd op (include/gym/ops/lora_linear.h).
#include "gym/ops/lora_linear.h"

#include <torch/autograd.h>

#include "gym/core/profile.h"

namespace gym::ops {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct LoraLinearFunction : torch::autograd::Function<LoraLinearFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a,
                               const torch::Tensor& b, double s) {
    torch::Tensor y, ha;
    {
      GYM_PROFILE("projections");
      y = torch::mm(x, w.t());   // [N, out]
    }
    {
      GYM_PROFILE("lora");
      ha = torch::mm(x, a.t());           // [N, r]
      y.addmm_(ha, b.t(), 1.0, s);        // y += s·ha·bᵀ (beta 1, alpha s)
    }
    ctx->save_for_backward({x, w, a, b, ha});
    ctx->saved_data["s"] = s;
    return y;
  }

  // The products of LibTorch's addmm and mm backward (mm_mat1_backward / mm_mat2_backward: aᵀ and
  // bᵀ are column-major, so their gradients are formed transposed), then ∂x as one GEMM into the
  // other instead of autograd's sum of two [N, in] tensors (beta 1: the same single rounding).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &a = saved[2], &b = saved[3], &ha = saved[4];
    const double s = ctx->saved_data["s"].toDouble();
    const auto& dy = grads[0];   // [N, out]
    const auto g = dy.mm(b) * s;   // ∂(x·aᵀ) [N, r]
    torch::Tensor dx, da, db;
    if (ctx->needs_input_grad(3)) db = dy.t().mm(ha) * s;   // [out, r]
    if (ctx->needs_input_grad(2)) da = g.t().mm(x);         // [r, in]
    if (ctx->needs_input_grad(0)) {
      dx = dy.mm(w);          // [N, in]
      dx.addmm_(g, a);
    }
    return {dx, torch::Tensor(), da, db, torch::Tensor()};
  }
};

}  // namespace

bool lora_linear_applies(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b) {
  if (!x.defined() || !w.defined() || !a.defined() || !b.defined() || x.dim() != 2 || w.dim() != 2 || a.dim() != 2 || b.dim() != 2)
    return false;
  for (const auto* t : {&x, &w, &a, &b})
    if (t->scalar_type() != torch::kFloat32 || t->device() != x.device()) return false;
  return !w.requires_grad() && x.size(1) == w.size(1) && a.size(1) == w.size(1) && b.size(0) == w.size(0) && b.size(1) == a.size(0);
}

torch::Tensor lora_linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b, double s) {
  return LoraLinearFunction::apply(x, w, a, b, s);
}

torch::Tensor lora_linear_reference(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b,
                                    double s) {
  auto y = torch::mm(x, w.t());
  y.addmm_(torch::mm(x, a.t()), b.t(), 1.0, s);
  return y;
}

}  // namespace gym::ops
