#include "gym/nn/rope.h"

#include <cmath>

#include "gym/ops/rotary.h"

namespace gym::nn {

RotaryEmbeddingImpl::RotaryEmbeddingImpl(const RopeOptions& o, torch::Device device) {
  const int64_t d = o.rotary_dim;
  // θ^(2i/D) in float32, as transformers computes it.
  auto exponents = torch::arange(0, d, 2, torch::kInt64).to(torch::kFloat32) / static_cast<float>(d);
  auto pos_freqs = torch::pow(torch::tensor(static_cast<float>(o.theta)), exponents);
  auto inv = 1.0 / pos_freqs;
  if (o.scaling_type == "yarn") {
    double factor = o.factor;
    // transformers 4.5x recomputes the factor when original_max_position_embeddings is given.
    const double orig = static_cast<double>(o.original_max_position_embeddings.value_or(o.max_position_embeddings));
    if (o.original_max_position_embeddings) factor = static_cast<double>(o.max_position_embeddings) / orig;
    attention_scaling = o.attention_factor.value_or(0.1 * std::log(factor) + 1.0);
    auto corr = [&](double rot) { return d * std::log(orig / (rot * 2 * M_PI)) / (2 * std::log(o.theta)); };
    double low = corr(o.beta_fast), high = corr(o.beta_slow);
    if (o.truncate) low = std::floor(low), high = std::ceil(high);
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(d - 1));
    if (low == high) high += 0.001;   // avoid a zero division, as transformers does
    auto ramp = ((torch::arange(d / 2, torch::kFloat32) - low) / (high - low)).clamp(0, 1);
    auto extrapolation_weight = 1 - ramp;
    auto interp = 1.0 / (factor * pos_freqs);
    inv = interp * (1 - extrapolation_weight) + inv * extrapolation_weight;
  }
  inv_freq = register_buffer("inv_freq", inv.to(device));   // computed on the CPU, kept beside the weights
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbeddingImpl::tables(const torch::Tensor& position_ids, torch::Dtype dtype) const {
  auto pos = position_ids.to(inv_freq.device(), torch::kFloat32);
  auto freqs = pos.unsqueeze(-1) * inv_freq.view({1, 1, -1});   // [B, T, R/2]
  auto emb = torch::cat({freqs, freqs}, -1);                     // [B, T, R]
  auto cos = (emb.cos() * attention_scaling).to(dtype).unsqueeze(1);
  auto sin = (emb.sin() * attention_scaling).to(dtype).unsqueeze(1);
  return {cos, sin};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  return ops::rotary_applies(x, cos, sin) ? ops::rotary(x, cos, sin) : ops::rotary_reference(x, cos, sin);
}

}  // namespace gym::nn
