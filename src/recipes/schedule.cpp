#include "gym/recipes/schedule.h"

#include <algorithm>
#include <cmath>

#include "gym/core/error.h"

namespace gym::recipes {

int64_t warmup_steps_for(int64_t total_steps, int64_t warmup_steps, double warmup_ratio) {
  if (warmup_steps > 0) return warmup_steps;
  return static_cast<int64_t>(std::ceil(warmup_ratio * static_cast<double>(total_steps)));
}

double learning_rate_at(const std::string& type, double base_lr, int64_t step, int64_t total, int64_t warmup) {
  if (type == "constant") return base_lr;
  if (step < warmup) return base_lr * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  if (type == "constant_with_warmup") return base_lr;
  const double progress =
      static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  if (type == "linear") return base_lr * std::max(0.0, 1.0 - progress);
  if (type == "cosine") return base_lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  config_error("unknown lr_scheduler_type '{}'", type);
}

}  // namespace gym::recipes
