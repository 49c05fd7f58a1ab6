// LoRA linear as one autograd op (ops/lora_linear.h): bit-identical to the LibTorch composition in
// the output and the gradients of x, A and B (SFT resumes and the fixture tests depend on it), the
// formula against float64, only the adapter trained (x without a gradient), and a trainable base
// refused.
#include "gym/ops/lora_linear.h"

#include "ops_test_util.h"

using gym::test::max_abs_diff;
namespace ops = gym::ops;

TEST(OpsLoraLinear, BitIdenticalToTheCompositionAndRightInFloat64) {
  torch::manual_seed(23);
  for (auto [n, in, out, r] : {std::array<int64_t, 4>{37, 64, 96, 8}, std::array<int64_t, 4>{256, 512, 256, 16}}) {
    SCOPED_TRACE("N " + std::to_string(n) + " in " + std::to_string(in) + " out " + std::to_string(out) + " r " + std::to_string(r));
    const double s = 2.0;
    auto x0 = torch::randn({n, in}), w = torch::randn({out, in}) * 0.1, a0 = torch::randn({r, in}) * 0.1, b0 = torch::randn({out, r}) * 0.1;
    auto dy = torch::randn({n, out});
    ASSERT_TRUE(ops::lora_linear_applies(x0, w, a0, b0));

    auto x = x0.clone().requires_grad_(true), a = a0.clone().requires_grad_(true), b = b0.clone().requires_grad_(true);
    auto y = ops::lora_linear(x, w, a, b, s);
    y.backward(dy);
    auto xr = x0.clone().requires_grad_(true), ar = a0.clone().requires_grad_(true), br = b0.clone().requires_grad_(true);
    auto yr = ops::lora_linear_reference(xr, w, ar, br, s);
    yr.backward(dy);
    EXPECT_TRUE(torch::equal(y, yr)) << max_abs_diff(y, yr);
    EXPECT_TRUE(torch::equal(x.grad(), xr.grad())) << max_abs_diff(x.grad(), xr.grad());
    EXPECT_TRUE(torch::equal(a.grad(), ar.grad())) << max_abs_diff(a.grad(), ar.grad());
    EXPECT_TRUE(torch::equal(b.grad(), br.grad())) << max_abs_diff(b.grad(), br.grad());

    // The formula in float64.
    auto f = [](const torch::Tensor& t) { return t.to(torch::kFloat64); };
    auto x64 = f(x0).requires_grad_(true), a64 = f(a0).requires_grad_(true), b64 = f(b0).requires_grad_(true);
    auto y64 = x64.mm(f(w).t()) + s * x64.mm(a64.t()).mm(b64.t());
    y64.backward(f(dy));
    EXPECT_LE(max_abs_diff(y, y64), 1e-3);
    EXPECT_LE(max_abs_diff(x.grad(), x64.grad()), 1e-3);
    EXPECT_LE(max_abs_diff(a.grad(), a64.grad()), 1e-3);
    EXPECT_LE(max_abs_diff(b.grad(), b64.grad()), 1e-3);
    EXPECT_GT(a64.grad().abs().max().item<double>(), 1.0);
  }
}

TEST(OpsLoraLinear, AdapterOnlyAndATrainableBaseRefused) {
  auto x = torch::randn({5, 8}), w = torch::randn({6, 8}), a = torch::randn({2, 8}).requires_grad_(true), b = torch::randn({6, 2}).requires_grad_(true);
  ops::lora_linear(x, w, a, b, 0.5).sum().backward();   // x has no gradient: ∂x is not formed
  EXPECT_LE(max_abs_diff(b.grad(), 0.5 * torch::ones({6, 5}).mm(x.mm(a.detach().t()))), 1e-5);
  EXPECT_FALSE(ops::lora_linear_applies(x, w.clone().requires_grad_(true), a, b));
  EXPECT_FALSE(ops::lora_linear_applies(x.view({1, 5, 8}), w, a, b));
  EXPECT_FALSE(ops::lora_linear_applies(x.to(torch::kFloat64), w, a, b));
}
