// Device placement: every tensor an op creates follows its input's device and the documented dtype.
// LibTorch 1.13 has no meta kernels for abs / where / index_select, which the twins use, so these
// tests check devices and dtypes of the outputs on CPU (the GPU tests do the same on cuda), and that
// a tensor on another device than the rest is an error.
#include "gym/core/error.h"
#include "gym/ops/nf4.h"
#include "gym/ops/policy_objective.h"
#include "gym/ops/selective_log_softmax.h"
#include "ops_test_util.h"

namespace ops = gym::ops;

namespace {
const torch::Device kMeta(torch::kCPU);   // the device under test
}

TEST(OpsDevice, SelectiveLogSoftmaxForwardBackwardFollowTheInput) {
  for (auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kFloat64}) {
    SCOPED_TRACE(c10::toString(dtype));
    auto logits = torch::zeros({2, 3, 17}, torch::TensorOptions().device(kMeta).dtype(dtype)).requires_grad_(true);
    auto ids = torch::zeros({2, 3}, torch::TensorOptions().device(kMeta).dtype(torch::kInt64));
    auto out = ops::selective_log_softmax(logits, ids, 0.7, true);
    const auto acc = dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    EXPECT_TRUE(out.logp.is_cpu());
    EXPECT_TRUE(out.entropy.is_cpu());
    EXPECT_EQ(out.logp.scalar_type(), acc);
    EXPECT_EQ(out.logp.sizes(), torch::IntArrayRef({2, 3}));
    (out.logp.sum() + out.entropy.sum()).backward();
    ASSERT_TRUE(logits.grad().defined());
    EXPECT_TRUE(logits.grad().is_cpu());
    EXPECT_EQ(logits.grad().scalar_type(), dtype);
    EXPECT_EQ(logits.grad().sizes(), logits.sizes());
  }
}

TEST(OpsDevice, PolicyObjectiveForwardBackwardFollowTheInput) {
  auto o = torch::TensorOptions().device(kMeta).dtype(torch::kFloat32);
  for (auto level : {ops::RatioLevel::Token, ops::RatioLevel::Sequence, ops::RatioLevel::SequenceToken}) {
    auto logp = torch::zeros({4, 5}, o).requires_grad_(true);
    ops::PolicyObjectiveOptions opts;
    opts.level = level;
    opts.dual_clip = 3.0;
    opts.delta = 2.0;
    auto mask = torch::zeros({4, 5}, o);
    auto out = ops::clipped_policy_objective(logp, torch::zeros({4, 5}, o), torch::zeros({4}, o), mask,
                                             ops::sequence_weights(mask, ops::Aggregation::TrlGrpo), opts);
    EXPECT_TRUE(out.loss.is_cpu());
    EXPECT_EQ(out.loss.dim(), 0);
    EXPECT_TRUE(out.ratio.is_cpu());
    EXPECT_EQ(out.ratio.size(1), level == ops::RatioLevel::Sequence ? 1 : 5);
    out.loss.backward();
    EXPECT_TRUE(logp.grad().is_cpu());
    EXPECT_EQ(logp.grad().sizes(), logp.sizes());
  }
}

TEST(OpsDevice, Nf4ReferenceFollowTheInputAndCpuOutputsFollowTheInput) {
  ops::Nf4Data q;
  auto m = torch::TensorOptions().device(kMeta);
  q.numel = 130;
  q.blocksize = 64;
  q.packed = torch::zeros({65}, m.dtype(torch::kUInt8));
  q.code = torch::zeros({16}, m.dtype(torch::kFloat32));
  q.absmax_codes = torch::zeros({3}, m.dtype(torch::kUInt8));
  q.nested_map = torch::zeros({256}, m.dtype(torch::kFloat32));
  q.nested_absmax = torch::zeros({1}, m.dtype(torch::kFloat32));
  auto w = ops::nf4_dequantize(q, torch::kBFloat16);
  EXPECT_TRUE(w.is_cpu());
  EXPECT_EQ(w.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(w.numel(), 130);
  auto x = torch::zeros({2, 10}, m.dtype(torch::kFloat32));
  EXPECT_TRUE(ops::nf4_matmul(x, q, 13, 10).is_cpu());
  // a tensor on another device than packed is an error naming it
  auto bad = q;
  bad.code = torch::zeros({16}, torch::Device("meta"));
  EXPECT_THROW(ops::nf4_dequantize(bad), gym::Error);
}
