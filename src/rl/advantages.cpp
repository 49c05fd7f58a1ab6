#include "gym/rl/advantages.h"

#include <cmath>
#include <unordered_map>

#include "gym/core/error.h"
#include "shape_text.h"

namespace gym::rl {

torch::Tensor nanstd(const torch::Tensor& x, int64_t dim, bool keepdim) {
  auto mean = torch::nanmean(x, dim, true);
  auto variance = torch::nanmean((x - mean).pow(2), dim, true);
  auto count = (~torch::isnan(x)).sum(dim, true).to(x.scalar_type());
  auto correction = torch::where(count > 1, count / (count - 1), torch::full_like(count, NAN));
  auto std = (variance * correction).sqrt();
  return keepdim ? std : std.squeeze(dim);
}

namespace {

// Whole-tensor nanstd (TRL: nanstd(rewards)); 0 for a single value, as TRL's guard does.
torch::Tensor batch_nanstd(const torch::Tensor& r) {
  return r.numel() > 1 ? nanstd(r.reshape({1, -1}), 1).squeeze(0) : torch::zeros({}, r.options());
}

double nan_item(const torch::Tensor& t) { return t.to(torch::kFloat64).item<double>(); }

}  // namespace

AdvantageResult group_advantages(const torch::Tensor& rewards_per_func, const std::vector<double>& weights, int64_t g,
                                 const std::string& scale, const std::vector<std::string>& func_names,
                                 const std::string& aggregation) {
  if (rewards_per_func.dim() != 2) runtime_error("group_advantages: rewards must be [B, F], got {}", detail::shape_text(rewards_per_func));
  const int64_t b = rewards_per_func.size(0), f = rewards_per_func.size(1);
  if (g < 1 || b % g != 0) config_error("group_advantages: batch of {} completions is not a multiple of num_generations {}", b, g);
  if (static_cast<int64_t>(weights.size()) != f)
    config_error("reward_weights has {} values for {} reward functions", weights.size(), f);
  if (!func_names.empty() && static_cast<int64_t>(func_names.size()) != f)
    runtime_error("group_advantages: {} reward function names for {} columns", func_names.size(), f);
  if (scale != "group" && scale != "batch" && scale != "none")
    config_error("scale_rewards must be group, batch or none, got '{}'", scale);

  const auto& per_func = rewards_per_func;
  auto w = torch::tensor(weights, per_func.options()).unsqueeze(0);   // [1, F]
  const auto unscorable = torch::isnan(per_func).all(1);              // [B]
  auto nan_rows = [&](const torch::Tensor& r) { return torch::where(unscorable, torch::full_like(r, NAN), r); };

  AdvantageResult out;
  torch::Tensor std_rewards, adv;   // [B] each
  if (aggregation == "sum_then_normalize") {
    auto r = nan_rows(torch::nansum(per_func * w, 1));                // [B]
    auto grouped = r.view({-1, g});                                   // [B/G, G]
    auto mean = torch::nanmean(grouped, 1).repeat_interleave(g);
    if (scale == "batch") std_rewards = batch_nanstd(r).expand_as(r);
    else std_rewards = g > 1 ? nanstd(grouped, 1).repeat_interleave(g) : torch::zeros_like(r);   // "none": for logging
    adv = r - mean;
    if (scale != "none") adv = adv / (std_rewards + 1e-4);
  } else if (aggregation == "normalize_then_sum") {
    auto grouped = per_func.view({-1, g, f});                         // [B/G, G, F]
    auto mean_k = torch::nanmean(grouped, 1, true);
    auto std_k = g > 1 ? nanstd(grouped, 1, true) : torch::zeros_like(mean_k);
    auto norm = ((grouped - mean_k) / (std_k + 1e-4)).view({-1, f});
    auto r = nan_rows(torch::nansum(norm * w, 1));
    std_rewards = batch_nanstd(r).expand_as(r);
    adv = (r - torch::nanmean(r)) / (std_rewards + 1e-4);
  } else {
    config_error("multi_objective_aggregation must be sum_then_normalize or normalize_then_sum, got '{}'", aggregation);
  }
  out.advantages = torch::nan_to_num(adv, 0.0);                     // unscorable rows: no learning signal
  out.rewards = nan_rows(torch::nansum(per_func * w, 1));

  // TRL's batch metrics (GT 2740-2750).
  out.metrics["reward"] = nan_item(torch::nanmean(out.rewards));
  out.metrics["reward_std"] = nan_item(batch_nanstd(out.rewards));
  out.metrics["frac_reward_zero_std"] =
      torch::isclose(std_rewards, torch::zeros_like(std_rewards)).to(torch::kFloat64).mean().item<double>();
  for (int64_t k = 0; k < f; ++k) {
    const std::string key = "rewards/" + (func_names.empty() ? std::to_string(k) : func_names[static_cast<size_t>(k)]);
    auto col = per_func.select(1, k);
    out.metrics[key + "/mean"] = nan_item(torch::nanmean(col));
    out.metrics[key + "/std"] = nan_item(batch_nanstd(col));
  }
  return out;
}

torch::Tensor verl_grpo_advantages(const torch::Tensor& scores, const std::vector<int64_t>& group_ids, bool norm_by_std,
                                   double epsilon) {
  if (scores.dim() != 1 || scores.size(0) != static_cast<int64_t>(group_ids.size()))
    runtime_error("verl_grpo_advantages: expected scores [B] and B group ids, got {} and {}", detail::shape_text(scores), group_ids.size());
  std::unordered_map<int64_t, std::vector<int64_t>> members;
  for (size_t i = 0; i < group_ids.size(); ++i) members[group_ids[i]].push_back(static_cast<int64_t>(i));
  auto out = scores.clone();
  for (const auto& [id, rows] : members) {
    auto index = torch::tensor(rows, torch::kInt64);
    auto s = scores.index_select(0, index);
    auto mean = rows.size() == 1 ? torch::zeros({}, s.options()) : s.mean();
    auto std = rows.size() == 1 ? torch::ones({}, s.options()) : s.std();   // unbiased
    out.index_copy_(0, index, norm_by_std ? (s - mean) / (std + epsilon) : s - mean);
  }
  return out;
}

torch::Tensor verl_grpo_advantages(const torch::Tensor& scores, int64_t group_size, bool norm_by_std, double epsilon) {
  if (group_size < 1) runtime_error("verl_grpo_advantages: group size must be >= 1, got {}", group_size);
  std::vector<int64_t> ids(static_cast<size_t>(scores.numel()));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i) / group_size;
  return verl_grpo_advantages(scores, ids, norm_by_std, epsilon);
}

}  // namespace gym::rl
