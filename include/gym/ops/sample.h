// One token per row from a categorical distribution, by the exponential race torch::multinomial
// also runs (token = argmax_v p_v / E_v, E_v ~ Exp(1), i.i.d.: P(token = v) = p_v exactly), with the
// E_v computed fast. torch::multinomial (LibTorch 1.13, CPU) draws each E_v from the mt19937
// generator with a double-precision log: ~11 ns per vocabulary entry, 2.8 ms per decode step for
// 8 rows × 32000, a fifth of the step. Here one 64-bit key per row comes from the generator (row
// order) and E_v = -log(u_v) with u_v from a counter-based hash of (key, v) and a float32 log, 8
// entries per AVX2 instruction: ~0.1 ms. The race, unlike a one-uniform inverse CDF, is stable under
// rounding: ~1e-7 differences in p (two process layouts, docs/performance.md) change the winner only
// when the top two ratios are that close.
//
// It draws different tokens than torch::multinomial for the same seed (same distribution:
// OpsSample.FrequenciesFollowTheProbabilities). u_v is a 23-bit uniform in (0, 1), so E_v ≥ 6e-8.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/types.h>

namespace gym::ops {

// probs [B, V] (float32, CPU, rows summing to > 0, entries finite and ≥ 0) → [B] int64.
// The generator advances by one 64-bit draw per row. Other devices, dtypes or CPUs without AVX2:
// torch::multinomial(probs, 1). A row with a negative, NaN or infinite entry, or summing to zero,
// is an error (as torch::multinomial).
torch::Tensor sample_categorical(const torch::Tensor& probs, at::Generator generator);

// The E_v of a row: -log(u_v) for v in [0, n), as sample_categorical computes them (tests).
torch::Tensor race_exponentials(uint64_t key, int64_t n);

}  // namespace gym::ops
