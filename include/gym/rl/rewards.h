// Named reward functions for group RL and the batch API the RL loop calls. A function scores a
// whole batch (so `external` runs its command once per batch) and may leave a completion unscored
// (nullopt → NaN; a completion no function scores gets advantage 0, see advantages.h).
//   accuracy  final answer (\boxed{...}, "#### N", "The answer is N", else the last number) equals
//             the row's `answer` / `solution` / `ground_truth` column numerically → 1, else 0;
//             no such column → unscored
//   format    Qwen3 layout: <think>…</think> then a non-empty answer → 1, else 0
//   length    0 up to length_target tokens, then −(n − target)/target, at most −1
//   external  a user shell command: one JSON object per completion on stdin
//             {"prompt", "completion", "completion_ids", "columns"}, one number per line on stdout
//             ("null"/"None" = unscored); a non-zero exit, a wrong count, a non-number, NaN, too
//             much output or the timeout is a runtime error naming the command. It runs sandboxed
//             (docs/rewards.md): no network, read-only filesystem, a private temp dir, limits.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace gym::rl {

struct RewardInput {
  std::string prompt;
  std::string completion;
  std::vector<int64_t> completion_ids;
  nlohmann::json columns;   // the dataset row's extra columns (answer, solution, ...)
};

struct RewardSettings {
  int64_t length_target = 256;       // `length`: no penalty up to this many tokens
  std::string external_command;      // `external`: run with /bin/sh -c
  double external_timeout = 60.0;    // seconds per batch (also its CPU-time limit)
  bool external_sandbox = true;      // namespaces via bubblewrap (limits apply either way)
  int64_t external_memory_mb = 4096;
  int64_t external_max_processes = 256;
  int64_t external_max_output_mb = 16;
};

using RewardScores = std::vector<std::optional<double>>;
using RewardFn = std::function<RewardScores(const std::vector<RewardInput>&, const RewardSettings&)>;

// ---- registry
// Adds a function; a taken name is a runtime_error.
void register_reward(const std::string& name, RewardFn fn);
bool has_reward(const std::string& name);
std::vector<std::string> reward_names();   // sorted

// ---- batch API
// Scores with one function: one value per input, NaN where it could not score. Unknown name → config_error.
std::vector<double> score_rewards(const std::string& name, const std::vector<RewardInput>& batch, const RewardSettings& s);
// Scores with every named function: result[f][i] for function f and completion i.
std::vector<std::vector<double>> score_batch(const std::vector<std::string>& names, const std::vector<RewardInput>& batch,
                                             const RewardSettings& s);
// Weighted nansum over functions per completion; NaN where no function scored (TRL). scores[f][i].
std::vector<double> combine_rewards(const std::vector<std::vector<double>>& scores, const std::vector<double>& weights);
// rewards/<fn>/mean and rewards/<fn>/std (nanmean, nanstd with Bessel's correction), as TRL logs them.
std::map<std::string, double> reward_metrics(const std::vector<std::string>& names, const std::vector<std::vector<double>>& scores);

// ---- the built-ins' parts, for reuse and tests
std::optional<double> accuracy_reward(const RewardInput& in);
std::optional<double> format_reward(const RewardInput& in);
std::optional<double> length_reward(const RewardInput& in, int64_t target);
RewardScores external_reward(const std::vector<RewardInput>& batch, const RewardSettings& s);
// The same with default limits.
RewardScores external_reward(const std::vector<RewardInput>& batch, const std::string& command, double timeout_s);

// The final answer of a completion: the last \boxed{...} (nested braces), else the text after the
// last "####", else the number after the last "the answer is", else the last number.
std::optional<std::string> extract_answer(const std::string& text);
// A number written as 1,234 / -3.50 / 1/2 / \frac{1}{2} / $5 / 40% (percent sign ignored); nullopt otherwise.
std::optional<double> parse_number(const std::string& text);
// Numeric equality (relative 1e-9) when both parse, else equality of the texts without spaces, `$`
// and a trailing period.
bool answers_match(const std::string& a, const std::string& b);
// The reference answer of a dataset row: `answer`, `solution` or `ground_truth` (a GSM8K-style
// solution is reduced to its final answer); nullopt when the row has none.
std::optional<std::string> reference_answer(const nlohmann::json& columns);

}  // namespace gym::rl
