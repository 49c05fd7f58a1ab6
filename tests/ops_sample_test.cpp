// The exponential-race sampler (include/gym/ops/sample.h): its exponentials against -log(u) in
// double precision and Exp(1)'s moments, the draw = argmax p / E over them, the token frequencies
// against the probabilities, reproducibility from the generator, and torch::multinomial's errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "gym/core/error.h"
#include "gym/ops/ops.h"
#include "gym/ops/sample.h"

namespace ops = gym::ops;

TEST(OpsSample, ExponentialsAreExpOneAndAccurate) {
  if (!ops::cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2: sample_categorical is torch::multinomial here";
  const int64_t n = 1 << 20;
  auto e = ops::race_exponentials(0x1234abcd5678ef01ull, n).to(torch::kFloat64);
  EXPECT_GT(e.min().item<double>(), 5.9e-8);   // u ≤ 1 - 2⁻²⁴: never 1 (E = 0 would win any race)
  EXPECT_NEAR(e.mean().item<double>(), 1.0, 5e-3);
  EXPECT_NEAR(e.var().item<double>(), 1.0, 1e-2);
  // P(E > x) = exp(-x) at a few quantiles
  for (double x : {0.01, 0.5, 1.0, 3.0, 8.0})
    EXPECT_NEAR((e > x).to(torch::kFloat64).mean().item<double>(), std::exp(-x), 4.0 * std::sqrt(std::exp(-x) / n) + 1e-6) << x;
  // the small ones: u = exp(-E) near 1 is (k + ½)·2⁻²³, so 2²³·(1 - u) - ½ is an integer there
  auto small = e.masked_select(e < 1e-4);
  ASSERT_GT(small.numel(), 10);
  auto k = (-(small.neg().expm1())) * 8388608.0 - 0.5;
  EXPECT_LE((k - k.round()).abs().max().item<double>(), 0.02);
  // another key gives other numbers
  EXPECT_FALSE(torch::equal(ops::race_exponentials(1, 64), ops::race_exponentials(2, 64)));
}

TEST(OpsSample, TheDrawIsTheArgmaxOfTheRaceAndAdvancesTheGeneratorOncePerRow) {
  if (!ops::cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2";
  torch::manual_seed(1);
  auto probs = torch::rand({5, 1003}).pow(4);
  probs = probs / probs.sum(-1, true);
  auto gen = at::detail::createCPUGenerator(42);
  auto twin = at::detail::createCPUGenerator(42);
  auto got = ops::sample_categorical(probs, gen);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{5}));
  for (int64_t r = 0; r < 5; ++r) {
    const uint64_t key = at::check_generator<at::CPUGeneratorImpl>(twin)->random64();
    auto race = probs[r] / ops::race_exponentials(key, 1003);
    EXPECT_EQ(got[r].item<int64_t>(), race.argmax().item<int64_t>()) << "row " << r;
  }
  // the generators are now in the same state: the next draws agree
  EXPECT_EQ(at::check_generator<at::CPUGeneratorImpl>(gen)->random64(), at::check_generator<at::CPUGeneratorImpl>(twin)->random64());
  // same seed, same tokens
  EXPECT_TRUE(torch::equal(ops::sample_categorical(probs, at::detail::createCPUGenerator(7)),
                           ops::sample_categorical(probs, at::detail::createCPUGenerator(7))));
}

TEST(OpsSample, FrequenciesFollowTheProbabilities) {
  if (!ops::cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2";
  // 11 categories (a partial AVX block), one of them impossible, one rare
  auto p = torch::tensor({0.3f, 0.0f, 0.15f, 0.1f, 0.1f, 0.05f, 0.05f, 0.1f, 0.1f, 0.045f, 0.005f});
  const int64_t draws = 200000;
  auto probs = p.unsqueeze(0).expand({draws, 11}).contiguous();
  auto got = ops::sample_categorical(probs, at::detail::createCPUGenerator(3));
  auto freq = torch::bincount(got, {}, 11).to(torch::kFloat64) / draws;
  for (int64_t v = 0; v < 11; ++v) {
    const double pv = p[v].item<double>();
    EXPECT_NEAR(freq[v].item<double>(), pv, 5.0 * std::sqrt(pv * (1 - pv) / draws) + 1e-9) << "token " << v;
  }
  // a wide vocabulary: the top token's share
  auto wide = torch::full({1, 32000}, 0.5f / 31999);
  wide.select(1, 31997).fill_(0.5f);
  wide = wide.expand({4000, 32000}).contiguous();
  auto top = (ops::sample_categorical(wide, at::detail::createCPUGenerator(4)) == 31997).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(top, 0.5, 5.0 * std::sqrt(0.25 / 4000));
}

TEST(OpsSample, InvalidRowsAreErrorsAsInTorchMultinomial) {
  auto gen = at::detail::createCPUGenerator(5);
  EXPECT_THROW(ops::sample_categorical(torch::tensor({{0.5f, NAN, 0.5f}}), gen), std::exception);
  EXPECT_THROW(ops::sample_categorical(torch::tensor({{0.5f, -0.1f, 0.6f}}), gen), std::exception);
  EXPECT_THROW(ops::sample_categorical(torch::tensor({{0.5f, INFINITY}}), gen), std::exception);
  EXPECT_THROW(ops::sample_categorical(torch::zeros({2, 9}), gen), std::exception);
  // a single possible token is always drawn, whatever its position in its AVX block
  for (int64_t v : {0, 7, 8, 16})
    EXPECT_EQ(ops::sample_categorical(torch::zeros({1, 17}).index_fill_(1, torch::tensor({v}), 1.0f), gen).item<int64_t>(), v);
}
