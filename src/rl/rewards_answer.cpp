// The built-in scorers that look at the text: answer extraction and comparison, format, length.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "gym/rl/rewards.h"

namespace gym::rl {

namespace {

bool digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }
bool space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && space(s[b])) ++b;
  while (e > b && space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

// Number tokens in reading order: -?digits(,ddd)*(.digits)?(/digits)? or -?.digits. A '-' is a sign
// only when it does not follow a word or a closing bracket (so "5-3" gives 5 and 3).
std::vector<std::string> number_tokens(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    const bool starts = digit(s[i]) || (s[i] == '.' && i + 1 < s.size() && digit(s[i + 1]));
    if (!starts || (i > 0 && (digit(s[i - 1]) || s[i - 1] == '.'))) {
      ++i;
      continue;
    }
    size_t b = i, j = i;
    if (b > 0 && s[b - 1] == '-' && (b == 1 || !(std::isalnum(static_cast<unsigned char>(s[b - 2])) || s[b - 2] == ')'))) --b;
    while (j < s.size() && digit(s[j])) ++j;
    while (j + 3 < s.size() && s[j] == ',' && digit(s[j + 1]) && digit(s[j + 2]) && digit(s[j + 3]) &&
           (j + 4 >= s.size() || !digit(s[j + 4])))
      j += 4;
    if (j + 1 < s.size() && s[j] == '.' && digit(s[j + 1]))
      for (++j; j < s.size() && digit(s[j]);) ++j;
    if (j + 1 < s.size() && s[j] == '/' && digit(s[j + 1]))
      for (++j; j < s.size() && digit(s[j]);) ++j;
    out.push_back(s.substr(b, j - b));
    i = j;
  }
  return out;
}

// The balanced-brace content after an opening brace at s[open]; nullopt when unbalanced.
std::optional<std::string> braced(const std::string& s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '{') ++depth;
    else if (s[i] == '}' && --depth == 0) return s.substr(open + 1, i - open - 1);
  }
  return std::nullopt;
}

std::optional<double> plain_number(const std::string& s) {
  if (s.empty() || s.find_first_not_of("+-0123456789.eE") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

std::optional<double> parse_number(const std::string& text) {
  std::string s = trim(text);
  for (const char* junk : {"\\!", "{,}", "\\$", "\\%", "$", "%", " ", "\\left", "\\right"}) replace_all(s, junk, "");
  while (!s.empty() && (s.back() == '.' || s.back() == ',')) s.pop_back();
  if (s.empty()) return std::nullopt;
  // \frac{a}{b}, \dfrac{a}{b}, \tfrac{a}{b}, optionally negated
  const bool negative = s[0] == '-';
  const std::string body = negative ? s.substr(1) : s;
  for (const char* frac : {"\\frac", "\\dfrac", "\\tfrac"}) {
    const std::string f = frac;
    if (body.rfind(f + "{", 0) != 0) continue;
    const auto num = braced(body, f.size());
    if (!num || f.size() + num->size() + 2 >= body.size() || body[f.size() + num->size() + 2] != '{') return std::nullopt;
    const auto den = braced(body, f.size() + num->size() + 2);
    if (!den || f.size() + num->size() + den->size() + 4 != body.size()) return std::nullopt;
    const auto a = parse_number(*num), b = parse_number(*den);
    if (!a || !b || *b == 0) return std::nullopt;
    return (negative ? -1 : 1) * *a / *b;
  }
  // thousands separators only in proper groups: 1,234,567
  if (s.find(',') != std::string::npos) {
    const auto tokens = number_tokens(s);
    if (tokens.size() != 1 || tokens[0] != s) return std::nullopt;
    s.erase(std::remove(s.begin(), s.end(), ','), s.end());
  }
  const auto slash = s.find('/');
  if (slash != std::string::npos) {
    const auto a = plain_number(s.substr(0, slash)), b = plain_number(s.substr(slash + 1));
    if (!a || !b || *b == 0) return std::nullopt;
    return *a / *b;
  }
  return plain_number(s);
}

std::optional<std::string> extract_answer(const std::string& text) {
  const auto boxed = text.rfind("\\boxed{");
  if (boxed != std::string::npos)
    if (auto inner = braced(text, boxed + 6)) return trim(*inner);
  const auto hashes = text.rfind("####");
  if (hashes != std::string::npos) {
    const auto end = text.find('\n', hashes);
    const std::string rest = trim(text.substr(hashes + 4, end == std::string::npos ? std::string::npos : end - hashes - 4));
    const auto numbers = number_tokens(rest);
    if (!numbers.empty()) return numbers.front();
    if (!rest.empty()) return rest;
  }
  const std::string low = lower(text);
  const auto phrase = low.rfind("the answer is");
  if (phrase != std::string::npos) {
    size_t i = phrase + 13;
    while (i < text.size() && (space(text[i]) || text[i] == ':' || text[i] == '$' || text[i] == '*')) ++i;
    size_t j = i;
    while (j < text.size() && std::string("-0123456789.,/").find(text[j]) != std::string::npos) ++j;
    const std::string run = text.substr(i, j - i);
    if (std::any_of(run.begin(), run.end(), digit)) return run;
    const auto numbers = number_tokens(text.substr(i));
    if (!numbers.empty()) return numbers.front();
  }
  const auto numbers = number_tokens(text);
  if (numbers.empty()) return std::nullopt;
  return numbers.back();
}

bool answers_match(const std::string& a, const std::string& b) {
  const auto x = parse_number(a), y = parse_number(b);
  if (x && y) return std::fabs(*x - *y) <= 1e-9 * std::max(1.0, std::fabs(*y));
  auto norm = [](std::string s) {
    s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return space(c) || c == '$'; }), s.end());
    while (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  };
  return !norm(a).empty() && norm(a) == norm(b);
}

std::optional<std::string> reference_answer(const nlohmann::json& columns) {
  if (!columns.is_object()) return std::nullopt;
  for (const char* key : {"answer", "solution", "ground_truth"}) {
    const auto it = columns.find(key);
    if (it == columns.end() || it->is_null()) continue;
    if (it->is_number()) return it->dump();
    if (!it->is_string()) return it->dump();
    const std::string s = it->get<std::string>();
    if (parse_number(s)) return s;
    return extract_answer(s).value_or(trim(s));
  }
  return std::nullopt;
}

std::optional<double> accuracy_reward(const RewardInput& in) {
  const auto truth = reference_answer(in.columns);
  if (!truth) return std::nullopt;   // nothing to compare with: cannot score
  const auto got = extract_answer(in.completion);
  return got && answers_match(*got, *truth) ? 1.0 : 0.0;
}

std::optional<double> format_reward(const RewardInput& in) {
  // The chat template may already have opened (thinking on) or closed (thinking off) the block.
  const std::string prompt_tail = trim(in.prompt);
  auto ends_with = [&](const std::string& tag) {
    return prompt_tail.size() >= tag.size() && prompt_tail.compare(prompt_tail.size() - tag.size(), tag.size(), tag) == 0;
  };
  std::string text = in.completion;
  if (ends_with("</think>")) text = "<think></think>" + text;
  else if (ends_with("<think>")) text = "<think>" + text;
  text = trim(text);
  if (text.rfind("<think>", 0) != 0) return 0.0;
  const auto close = text.find("</think>");
  if (close == std::string::npos || text.find("<think>", 7) < close) return 0.0;
  const std::string answer = trim(text.substr(close + 8));
  const bool clean = answer.find("<think>") == std::string::npos && answer.find("</think>") == std::string::npos;
  return !answer.empty() && clean ? 1.0 : 0.0;
}

std::optional<double> length_reward(const RewardInput& in, int64_t target) {
  const double n = static_cast<double>(in.completion_ids.size()), t = static_cast<double>(std::max<int64_t>(1, target));
  return n <= t ? 0.0 : -std::min(1.0, (n - t) / t);
}

}  // namespace gym::rl
