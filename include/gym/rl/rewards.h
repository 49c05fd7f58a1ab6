// Named reward functions: accuracy, format, length, external (a user command).
#pragma once
#include <nlohmann/json.hpp>

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
  std::string external_command;      // `external`
  double external_timeout = 60.0;    // seconds per batch
};

// The final answer of a completion: \boxed{...}, "#### N", "The answer is N", else the last number.
std::optional<std::string> extract_answer(const std::string& text);
// Numeric equality of two answers (commas, fractions a/b, trailing zeros, signs); else exact text.
bool answers_match(const std::string& a, const std::string& b);

// Scores a batch with one named function: one value per input, NaN where it cannot score.
std::vector<double> score_rewards(const std::string& name, const std::vector<RewardInput>& batch, const RewardSettings& s);

const std::vector<std::string>& reward_names();

}  // namespace gym::rl
