// Group-relative advantages of GRPO/GSPO, exactly as TRL computes them (specs/gspo_grpo.md §2), and
// verl's GRPO outcome advantages for comparison runs. Pure tensor functions.
#pragma once
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

namespace gym::rl {

struct AdvantageResult {
  torch::Tensor advantages;               // [B]; 0 for completions no reward function could score
  torch::Tensor rewards;                  // [B] weighted nansum of the functions; NaN where none could score
  std::map<std::string, double> metrics;  // reward, reward_std, frac_reward_zero_std, rewards/<fn>/{mean,std}
};

// TRL's advantages. rewards_per_func: [B, F] (NaN = that function could not score the row), groups of
// group_size consecutive rows, weights: F values.
//   aggregation "sum_then_normalize" (TRL default): r = nansum_k w_k r_k; A = (r − group nanmean)/(σ + 1e-4)
//     with σ the nanstd (Bessel) of the group (scale_rewards "group") or of the whole batch ("batch"),
//     or A = r − group nanmean ("none").
//   aggregation "normalize_then_sum" (GDPO): each function normalised per group (+1e-4), weighted
//     nansum, then normalised over the batch.
// A row every function left NaN is excluded from the baselines and gets advantage 0. The per-function
// metrics are named rewards/<func_names[k]>/..., or rewards/<k>/... when func_names is empty.
// Call on the gathered batch of all ranks, before slicing per rank (TRL does the same).
AdvantageResult group_advantages(const torch::Tensor& rewards_per_func, const std::vector<double>& weights, int64_t group_size,
                                 const std::string& scale_rewards = "group", const std::vector<std::string>& func_names = {},
                                 const std::string& aggregation = "sum_then_normalize");

// verl's compute_grpo_outcome_advantage: scores [B] grouped by group_ids[i] (any labels); a group of
// one gets μ=0, σ=1; σ is torch.std (Bessel). A = (s − μ)/(σ + epsilon), or s − μ without the std
// (Dr.GRPO). Returns [B]; multiply by the completion mask for verl's [B, T] form.
torch::Tensor verl_grpo_advantages(const torch::Tensor& scores, const std::vector<int64_t>& group_ids, bool norm_by_std = true,
                                   double epsilon = 1e-6);
// The same with groups of group_size consecutive rows.
torch::Tensor verl_grpo_advantages(const torch::Tensor& scores, int64_t group_size, bool norm_by_std = true, double epsilon = 1e-6);

// nanstd with Bessel's correction along dim (TRL's utils.nanstd): NaN where fewer than 2 values.
torch::Tensor nanstd(const torch::Tensor& x, int64_t dim, bool keepdim = false);

}  // namespace gym::rl
