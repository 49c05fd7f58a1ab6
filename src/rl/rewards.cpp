// The reward registry and the batch API (scoring, weighted combination, per-function metrics).
#include "gym/rl/rewards.h"

#include <cmath>
#include <mutex>

#include "gym/core/error.h"

namespace gym::rl {

namespace {

// Wraps a per-completion scorer as a batch function.
template <typename Fn>
RewardFn each(Fn fn) {
  return [fn](const std::vector<RewardInput>& batch, const RewardSettings& s) {
    RewardScores out;
    out.reserve(batch.size());
    for (const auto& in : batch) out.push_back(fn(in, s));
    return out;
  };
}

struct Registry {
  std::mutex mu;
  std::map<std::string, RewardFn> fns;
  Registry() {
    fns["accuracy"] = each([](const RewardInput& in, const RewardSettings&) { return accuracy_reward(in); });
    fns["format"] = each([](const RewardInput& in, const RewardSettings&) { return format_reward(in); });
    fns["length"] = each([](const RewardInput& in, const RewardSettings& s) { return length_reward(in, s.length_target); });
    fns["external"] = [](const std::vector<RewardInput>& batch, const RewardSettings& s) {
      if (s.external_command.empty()) config_error("the external reward needs reward_command");
      return external_reward(batch, s);
    };
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

std::string joined_names() {
  std::string s;
  for (const auto& n : reward_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

void register_reward(const std::string& name, RewardFn fn) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (name.empty() || !fn) runtime_error("register_reward: a reward needs a name and a function");
  if (!r.fns.emplace(name, std::move(fn)).second) runtime_error("a reward function named '{}' is already registered", name);
}

bool has_reward(const std::string& name) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.fns.count(name) > 0;
}

std::vector<std::string> reward_names() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const auto& [name, fn] : r.fns) names.push_back(name);
  return names;
}

std::vector<double> score_rewards(const std::string& name, const std::vector<RewardInput>& batch, const RewardSettings& s) {
  RewardFn fn;
  {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    const auto it = r.fns.find(name);
    if (it != r.fns.end()) fn = it->second;
  }
  if (!fn) config_error("unknown reward function '{}' (known: {})", name, joined_names());
  const auto scores = fn(batch, s);
  if (scores.size() != batch.size())
    runtime_error("reward function '{}' returned {} scores for {} completions", name, scores.size(), batch.size());
  std::vector<double> out;
  out.reserve(scores.size());
  for (const auto& v : scores) out.push_back(v ? *v : NAN);
  return out;
}

std::vector<std::vector<double>> score_batch(const std::vector<std::string>& names, const std::vector<RewardInput>& batch,
                                             const RewardSettings& s) {
  std::vector<std::vector<double>> out;
  out.reserve(names.size());
  for (const auto& name : names) out.push_back(score_rewards(name, batch, s));
  return out;
}

std::vector<double> combine_rewards(const std::vector<std::vector<double>>& scores, const std::vector<double>& weights) {
  if (weights.size() != scores.size())
    config_error("reward_weights has {} values for {} reward functions", weights.size(), scores.size());
  const size_t n = scores.empty() ? 0 : scores[0].size();
  std::vector<double> out(n, NAN);
  for (size_t f = 0; f < scores.size(); ++f) {
    if (scores[f].size() != n) runtime_error("combine_rewards: function {} has {} scores, expected {}", f, scores[f].size(), n);
    for (size_t i = 0; i < n; ++i) {
      if (std::isnan(scores[f][i])) continue;
      out[i] = (std::isnan(out[i]) ? 0.0 : out[i]) + weights[f] * scores[f][i];
    }
  }
  return out;
}

std::map<std::string, double> reward_metrics(const std::vector<std::string>& names, const std::vector<std::vector<double>>& scores) {
  if (names.size() != scores.size()) runtime_error("reward_metrics: {} names for {} score lists", names.size(), scores.size());
  std::map<std::string, double> m;
  for (size_t f = 0; f < names.size(); ++f) {
    double sum = 0, n = 0;
    for (double v : scores[f])
      if (!std::isnan(v)) sum += v, n += 1;
    const double mean = n > 0 ? sum / n : NAN;
    double sq = 0;
    for (double v : scores[f])
      if (!std::isnan(v)) sq += (v - mean) * (v - mean);
    m["rewards/" + names[f] + "/mean"] = mean;
    m["rewards/" + names[f] + "/std"] = n > 1 ? std::sqrt(sq / (n - 1)) : NAN;
  }
  return m;
}

}  // namespace gym::rl
