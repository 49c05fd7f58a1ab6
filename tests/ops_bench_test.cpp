// Timings of the ops (CUDA kernel, CPU twin, reference), for scripts/gpu_check.sh and by hand:
//   gym_tests --gtest_also_run_disabled_tests --gtest_filter='OpsBench.DISABLED_*'
// Disabled by default and asserts nothing about time. Writes JSON to $GYM_OPS_BENCH_JSON when set.
#include <torch/cuda.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "gym/ops/nf4.h"
#include "gym/ops/policy_objective.h"
#include "gym/ops/selective_log_softmax.h"
#include "gym/quant/nf4.h"
#include "ops_test_util.h"
#include "quant/nf4_ops.h"

namespace ops = gym::ops;

namespace {

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// Median milliseconds of fn over `reps` runs after one warm-up.
template <typename Fn>
double time_ms(const torch::Device& d, int reps, Fn&& fn) {
  fn();
  sync(d);
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    sync(d);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

TEST(OpsBench, DISABLED_KernelsTwinsAndReferences) {
  const bool cuda = torch::cuda::is_available();
  const torch::Device d = cuda ? torch::kCUDA : torch::kCPU;
  nlohmann::json out = {{"device", cuda ? "cuda" : "cpu"}, {"kernels_compiled", ops::cuda_kernels_compiled()}};
  torch::manual_seed(1);
  {  // selective log-softmax with entropy, forward + backward
    const int64_t b = cuda ? 4 : 2, t = cuda ? 512 : 64, v = cuda ? 151936 : 32768;
    auto dtype = cuda ? torch::kBFloat16 : torch::kFloat32;
    auto logits = torch::randn({b, t, v}, torch::TensorOptions().device(d)).mul_(3).to(dtype).requires_grad_(true);
    auto ids = torch::randint(0, v, {b, t}, torch::TensorOptions().device(d).dtype(torch::kInt64));
    auto fb = [&](auto&& f) {
      return [&, f] {
        logits.mutable_grad() = torch::Tensor();
        auto r = f();
        (r.logp.sum() + r.entropy.sum()).backward();
      };
    };
    nlohmann::json j = {{"shape", {b, t, v}}, {"dtype", c10::toString(dtype)}};
    j["auto_ms"] = time_ms(d, 5, fb([&] { return ops::selective_log_softmax(logits, ids, 0.7, true); }));
    j["twin_ms"] = time_ms(d, 5, fb([&] { return ops::selective_log_softmax(logits, ids, 0.7, true, ops::Impl::Twin); }));
    if (!cuda) j["reference_f64_ms"] = time_ms(d, 3, fb([&] { return ops::selective_log_softmax_reference(logits, ids, 0.7, true); }));
    out["selective_log_softmax_fwd_bwd"] = j;
  }
  {  // GSPO objective, forward + backward
    const int64_t b = 256, t = 1024;
    auto o = torch::TensorOptions().device(d).dtype(torch::kFloat32);
    auto logp = (-torch::rand({b, t}, o) * 3).requires_grad_(true);
    auto old = logp.detach() + torch::randn({b, t}, o) * 0.05;
    auto adv = torch::randn({b}, o), mask = torch::ones({b, t}, o);
    auto w = ops::sequence_weights(mask, ops::Aggregation::TrlGrpo);
    ops::PolicyObjectiveOptions po;
    auto run = [&](ops::Impl impl, bool ref) {
      return [&, impl, ref] {
        logp.mutable_grad() = torch::Tensor();
        po.impl = impl;
        auto r = ref ? ops::clipped_policy_objective_reference(logp, old, adv, mask, w, po)
                     : ops::clipped_policy_objective(logp, old, adv, mask, w, po);
        r.loss.backward();
      };
    };
    out["gspo_objective_fwd_bwd"] = {{"shape", {b, t}},
                                     {"auto_ms", time_ms(d, 10, run(ops::Impl::Auto, false))},
                                     {"twin_ms", time_ms(d, 10, run(ops::Impl::Twin, false))},
                                     {"reference_ms", time_ms(d, 10, run(ops::Impl::Auto, true))}};
  }
  {  // NF4 dequantize of a 4096 × 4096 double-quantized weight
    auto w = gym::quant::quantize_nf4(torch::randn({4096, 4096}) * 0.02, 64, true);
    auto q = gym::quant::nf4_ops_data(w);
    for (auto* t : {&q.packed, &q.code, &q.absmax_codes, &q.nested_map, &q.nested_absmax}) *t = t->to(d);
    out["nf4_dequantize_4096x4096"] = {{"auto_ms", time_ms(d, 10, [&] { (void)ops::nf4_dequantize(q, torch::kBFloat16); })},
                                       {"reference_ms", time_ms(d, 10, [&] { (void)ops::nf4_dequantize_reference(q, torch::kBFloat16); })}};
  }
  std::cout << out.dump(1) << "\n";
  if (const char* path = std::getenv("GYM_OPS_BENCH_JSON"); path && *path) std::ofstream(path) << out.dump(1) << "\n";
  EXPECT_TRUE(out.contains("nf4_dequantize_4096x4096"));
}
