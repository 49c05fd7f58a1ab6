// Learning-rate schedules with Hugging Face Trainer semantics.
#pragma once
#include <cstdint>
#include <string>

namespace gym::recipes {

// Warm-up steps: warmup_steps when > 0, else ceil(warmup_ratio × total_steps).
int64_t warmup_steps_for(int64_t total_steps, int64_t warmup_steps, double warmup_ratio);

// Learning rate for optimizer step `step` (0-based) of `total` steps:
//   constant             lr
//   constant_with_warmup lr · min(1, step / warmup)
//   linear               warm-up, then lr · (total − step) / (total − warmup)
//   cosine               warm-up, then lr · 0.5 · (1 + cos(π · progress))
double learning_rate_at(const std::string& type, double base_lr, int64_t step, int64_t total, int64_t warmup);

}  // namespace gym::recipes
