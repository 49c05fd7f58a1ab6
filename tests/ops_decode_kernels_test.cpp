// The decoding kernels vs their references: the small-M linear (at::linear, OpenBLAS) on every
// row-block remainder, odd and tiny inner sizes, views, 3-D input and its dispatch rules; decode
// attention (matmul + softmax + matmul) with GQA, a padding mask and spare cache capacity.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gym/ops/decode_attention.h"
#include "gym/ops/ops.h"
#include "gym/ops/small_m_linear.h"
#include "ops/cpu_workers.h"

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>
#include <limits>
#include <tuple>

namespace ops = gym::ops;

TEST(OpsSmallMLinear, KernelMatchesReferenceOnEveryShape) {
  torch::manual_seed(3);
  torch::NoGradGuard ng;
  for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 13, 16})
    for (int64_t k : {1, 7, 8, 9, 64, 513})
      for (int64_t n : {1, 2, 5, 64, 129}) {
        SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n));
        auto x = torch::randn({m, k}), w = torch::randn({n, k});
        auto ref = ops::small_m_linear_reference(x.to(torch::kFloat64), w.to(torch::kFloat64));
        auto got = ops::small_m_linear(x, w);
        ASSERT_EQ(got.sizes(), ref.sizes());
        // float32 rounding of a k-term dot product: |err| ≤ ~k·eps·Σ|x·w|
        const double bound = 4e-7 * static_cast<double>(k) * (x.abs().to(torch::kFloat64).mm(w.abs().to(torch::kFloat64).t())).max().item<double>();
        EXPECT_LE((got.to(torch::kFloat64) - ref).abs().max().item<double>(), bound + 1e-6);
      }
}

TEST(OpsSmallMLinear, ViewsAndLeadingDimsAndDispatch) {
  torch::manual_seed(4);
  torch::NoGradGuard ng;
  auto big = torch::randn({2, 3, 40});
  auto x = big.narrow(-1, 3, 32);   // non-contiguous [2, 3, 32]
  auto w = torch::randn({10, 32});
  ASSERT_TRUE(ops::small_m_linear_applies(x, w));
  auto got = ops::linear(x, w);
  EXPECT_EQ(got.sizes(), (std::vector<int64_t>{2, 3, 10}));
  EXPECT_LE((got - ops::small_m_linear_reference(x, w)).abs().max().item<double>(), 1e-5);
  // beyond kSmallMRows rows, float64, or a gradient to track: the reference path
  EXPECT_FALSE(ops::small_m_linear_applies(torch::randn({ops::kSmallMRows + 1, 32}), w));
  EXPECT_FALSE(ops::small_m_linear_applies(x.to(torch::kFloat64), w.to(torch::kFloat64)));
}

// Above 256 KB of weights the output rows are split over the helper threads (on a machine with
// more than one); each row is computed by the same code wherever it runs, so the whole product
// equals, bit for bit, the concatenation of single-threaded calls on 32-row slices (< 64 rows: never split).
TEST(OpsSmallMLinear, SplitOverThreadsEqualsOneCallPerSlice) {
  if (ops::cpu_worker_threads() == 1) GTEST_SKIP() << "one hardware thread (or OPENBLAS_NUM_THREADS=1): nothing is split";
  torch::manual_seed(6);
  torch::NoGradGuard ng;
  for (int64_t m : {1, 8}) {
    auto x = torch::randn({m, 512}), w = torch::randn({2003, 512});
    auto whole = ops::small_m_linear(x, w);
    std::vector<torch::Tensor> parts;
    for (int64_t o = 0; o < w.size(0); o += 32) parts.push_back(ops::small_m_linear(x, w.narrow(0, o, std::min<int64_t>(32, w.size(0) - o))));
    EXPECT_TRUE(torch::equal(whole, torch::cat(parts, 1))) << "rows " << m;
  }
}

// The fused LoRA form (x·Wᵀ + s·(x·Aᵀ)·Bᵀ in one pass over W) against its float64 twin on every
// row-block remainder, ranks below, at and above the 8-lane width, and a weight large enough to
// be split over the helper threads; each row alone equals, bit for bit, that row in the batch.
TEST(OpsSmallMLinear, FusedLoraMatchesReferenceAndRowsAreIndependent) {
  torch::manual_seed(8);
  torch::NoGradGuard ng;
  for (int64_t m : {1, 3, 4, 8, 16})
    for (int64_t r : {1, 4, 8, 12, 16, 64})
      for (int64_t n : {5, 64, 2003}) {
        const int64_t k = 136;
        SCOPED_TRACE(std::to_string(m) + " rows, rank " + std::to_string(r) + ", out " + std::to_string(n));
        auto x = torch::randn({m, k}), w = torch::randn({n, k}), a = torch::randn({r, k}), b = torch::randn({n, r});
        ASSERT_TRUE(ops::small_m_linear_lora_applies(x, w, a, b));
        const double s = 0.75;
        auto got = ops::small_m_linear_lora(x, w, a, b, s);
        auto d = [](const torch::Tensor& t) { return t.to(torch::kFloat64); };
        auto ref = ops::small_m_linear_lora_reference(d(x), d(w), d(a), d(b), s);
        auto t = d(x).mm(d(a).t());
        const double bound = 4e-7 * static_cast<double>(k) *
                             (d(x).abs().mm(d(w).abs().t()) + s * t.abs().mm(d(b).abs().t()) * (1 + 4e-7 * k)).max().item<double>();
        EXPECT_LE((d(got) - ref).abs().max().item<double>(), bound);
        // without the LoRA term the result is far off (the test sees the adapter)
        EXPECT_GT((d(ops::small_m_linear(x, w)) - ref).abs().max().item<double>(), 100 * bound);
        for (int64_t row : {int64_t{0}, m - 1})
          EXPECT_TRUE(torch::equal(ops::small_m_linear_lora(x.narrow(0, row, 1), w, a, b, s), got.narrow(0, row, 1))) << "row " << row;
      }
  // dispatch: gradients, a mismatched B or more rows than the kernel takes go to the reference
  auto x = torch::randn({4, 32}), w = torch::randn({10, 32}), a = torch::randn({8, 32}), b = torch::randn({10, 8});
  EXPECT_FALSE(ops::small_m_linear_lora_applies(x, w, a, b.t().contiguous()));
  EXPECT_FALSE(ops::small_m_linear_lora_applies(torch::randn({ops::kSmallMRows + 1, 32}), w, a, b));
  torch::GradMode::set_enabled(true);
  EXPECT_FALSE(ops::small_m_linear_lora_applies(x, w, a, b.requires_grad_()));
}

// The AVX-512 path keeps each output's 8-lane partial sums in one half of a zmm register: every
// result equals the AVX2 path's bit for bit (row blocks of 8, 4 and 1, odd outputs, K tails, LoRA).
TEST(OpsSmallMLinear, Avx512EqualsAvx2BitForBit) {
  if (!ops::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  torch::manual_seed(9);
  torch::NoGradGuard ng;
  for (int64_t m : {1, 3, 5, 8, 13, 16})
    for (int64_t k : {7, 64, 515})
      for (int64_t n : {1, 5, 130, 2003}) {
        SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n));
        auto x = torch::randn({m, k}), w = torch::randn({n, k}), a = torch::randn({8, k}), b = torch::randn({n, 8});
        EXPECT_TRUE(torch::equal(ops::small_m_linear(x, w, true), ops::small_m_linear(x, w, false)));
        EXPECT_TRUE(torch::equal(ops::small_m_linear_lora(x, w, a, b, 0.5, true), ops::small_m_linear_lora(x, w, a, b, 0.5, false)));
      }
}

// Every chunk runs exactly once per call, calls from inside a chunk and from a second thread run
// serially on their own thread, and a call returns only when all its chunks are done.
TEST(OpsCpuWorkers, EveryChunkRunsOnceAndConcurrentCallsStayCorrect) {
  auto hammer = [](int seed, int calls) {
    std::vector<std::atomic<int>> hits(300);
    for (int c = 0; c < calls; ++c) {
      const int64_t n = 1 + (seed * 7919 + c * 104729) % 300;
      for (auto& h : hits) h.store(0);
      ops::parallel_chunks(n, [&](int64_t i) {
        hits[static_cast<size_t>(i)].fetch_add(1);
        if (i == 0) ops::parallel_chunks(3, [&](int64_t) {});   // nested: serial, must not deadlock
      });
      for (int64_t i = 0; i < 300; ++i)
        if (hits[static_cast<size_t>(i)].load() != (i < n ? 1 : 0)) return false;
    }
    return true;
  };
  bool other = false;
  std::thread t([&] { other = hammer(2, 500); });
  EXPECT_TRUE(hammer(1, 2000));
  t.join();
  EXPECT_TRUE(other);
}

TEST(OpsSmallMLinear, GradientsFallBackToTheReference) {
  auto x = torch::randn({4, 16}, torch::requires_grad());
  auto w = torch::randn({8, 16});
  EXPECT_FALSE(ops::small_m_linear_applies(x, w));
  ops::linear(x, w).sum().backward();
  EXPECT_LE((x.grad() - w.sum(0).expand({4, 16})).abs().max().item<double>(), 1e-5);
}

TEST(OpsDecodeAttention, KernelMatchesReferenceWithGqaMaskAndSpareCapacity) {
  torch::manual_seed(5);
  torch::NoGradGuard ng;
  for (auto [nh, nkv, d] : {std::tuple<int64_t, int64_t, int64_t>{8, 4, 64}, {4, 4, 16}, {6, 2, 12}}) {
    const int64_t b = 3, cap = 40, len = 29;
    auto q = torch::randn({b, 1, nh, d}).transpose(1, 2);   // [B, nh, 1, D] as attention passes it
    auto k = torch::randn({b, nkv, cap, d}), v = torch::randn({b, nkv, cap, d});
    auto mask = torch::zeros({b, 1, 1, len});
    mask[1].narrow(-1, 0, 5).fill_(std::numeric_limits<float>::lowest());   // left padding of row 1
    for (bool masked : {false, true}) {
      auto m = masked ? mask : torch::Tensor();
      ASSERT_TRUE(ops::decode_attention_applies(q, k, v, m));
      auto got = ops::decode_attention(q, k, v, len, m, 1.0 / std::sqrt(static_cast<double>(d)));
      auto ref = ops::decode_attention_reference(q, k, v, len, m, 1.0 / std::sqrt(static_cast<double>(d)));
      ASSERT_EQ(got.sizes(), ref.sizes());
      EXPECT_LE((got - ref).abs().max().item<double>(), 2e-6) << nh << " " << nkv << " " << d;
    }
  }
}
