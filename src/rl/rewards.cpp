#include "gym/rl/rewards.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <regex>
#include <sstream>

#include "gym/core/error.h"

namespace gym::rl {

namespace {

const std::regex kNumber(R"(-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+)");

std::optional<double> to_number(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), ','), s.end());
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '$' || c == ' ' || c == '%'; }), s.end());
  if (s.empty()) return std::nullopt;
  const auto slash = s.find('/');
  char* end = nullptr;
  if (slash != std::string::npos) {
    const double a = std::strtod(s.substr(0, slash).c_str(), &end);
    if (*end) return std::nullopt;
    const double b = std::strtod(s.substr(slash + 1).c_str(), &end);
    if (*end || b == 0) return std::nullopt;
    return a / b;
  }
  const double v = std::strtod(s.c_str(), &end);
  if (*end) return std::nullopt;
  return v;
}

std::optional<std::string> last_number(const std::string& text) {
  std::optional<std::string> last;
  for (std::sregex_iterator it(text.begin(), text.end(), kNumber), e; it != e; ++it) last = it->str();
  return last;
}

std::optional<std::string> ground_truth(const nlohmann::json& cols) {
  for (const char* k : {"answer", "solution", "ground_truth", "target"}) {
    if (!cols.contains(k)) continue;
    const auto& v = cols[k];
    if (v.is_number()) return v.dump();
    if (v.is_string()) {
      const std::string s = v.get<std::string>();
      if (auto n = to_number(s)) return s;
      return extract_answer(s).value_or(s);
    }
  }
  return std::nullopt;
}

std::vector<double> run_external(const std::vector<RewardInput>& batch, const RewardSettings& s) {
  if (s.external_command.empty()) config_error("the external reward needs reward_command");
  std::string input;
  for (const auto& r : batch)
    input += nlohmann::json({{"prompt", r.prompt}, {"completion", r.completion}, {"completion_ids", r.completion_ids},
                             {"columns", r.columns}}).dump() + "\n";
  int in_pipe[2], out_pipe[2];
  if (pipe(in_pipe) != 0 || pipe(out_pipe) != 0) runtime_error("external reward: cannot create pipes");
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    close(in_pipe[1]);
    close(out_pipe[0]);
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", s.external_command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  signal(SIGPIPE, SIG_IGN);
  fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
  std::string output;
  size_t written = 0;
  bool in_open = true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(s.external_timeout);
  for (;;) {
    if (in_open && written == input.size()) close(in_pipe[1]), in_open = false;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {in_open ? in_pipe[1] : -1, POLLOUT, 0}};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      kill(-pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      close(out_pipe[0]);
      if (in_open) close(in_pipe[1]);
      runtime_error("external reward '{}' timed out after {} s", s.external_command, s.external_timeout);
    }
    poll(fds, 2, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (in_open && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = write(in_pipe[1], input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      else if (n < 0 && errno != EAGAIN) close(in_pipe[1]), in_open = false;
    }
    if (fds[0].revents & (POLLIN | POLLHUP)) {
      char buf[4096];
      const ssize_t n = read(out_pipe[0], buf, sizeof(buf));
      if (n <= 0) break;
      output.append(buf, static_cast<size_t>(n));
    }
  }
  close(out_pipe[0]);
  if (in_open) close(in_pipe[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    runtime_error("external reward '{}' failed (exit status {})", s.external_command, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  std::vector<double> values;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    char* end = nullptr;
    const double v = std::strtod(line.c_str(), &end);
    while (*end == ' ' || *end == '\r' || *end == '\t') ++end;
    if (end == line.c_str() || *end) {
      if (line == "nan" || line == "null" || line == "None") values.push_back(NAN);
      else runtime_error("external reward '{}' printed '{}', which is not a number", s.external_command, line);
    } else {
      values.push_back(v);
    }
  }
  if (values.size() != batch.size())
    runtime_error("external reward '{}' printed {} numbers for {} completions", s.external_command, values.size(), batch.size());
  return values;
}

}  // namespace

std::optional<std::string> extract_answer(const std::string& text) {
  // \boxed{...} with nested braces: the last one wins.
  const auto boxed = text.rfind("\\boxed{");
  if (boxed != std::string::npos) {
    int depth = 0;
    for (size_t i = boxed + 7; i < text.size(); ++i) {
      if (text[i] == '{') ++depth;
      else if (text[i] == '}' && depth-- == 0) return text.substr(boxed + 7, i - boxed - 7);
    }
  }
  static const std::regex hashes(R"(####\s*([^\n]+))");
  static const std::regex answer_is(R"([Tt]he (?:final )?answer is[:\s]*\$?([-\d.,/]+))");
  std::smatch m;
  if (std::regex_search(text, m, hashes)) return last_number(m[1].str()).value_or(m[1].str());
  if (std::regex_search(text, m, answer_is)) return m[1].str();
  return last_number(text);
}

bool answers_match(const std::string& a, const std::string& b) {
  const auto x = to_number(a), y = to_number(b);
  if (x && y) return std::fabs(*x - *y) <= 1e-9 * std::max(1.0, std::fabs(*y));
  auto trim = [](std::string s) {
    s.erase(0, s.find_first_not_of(" \t\n$"));
    s.erase(s.find_last_not_of(" \t\n$.") + 1);
    return s;
  };
  return trim(a) == trim(b);
}

const std::vector<std::string>& reward_names() {
  static const std::vector<std::string> names = {"accuracy", "format", "length", "external"};
  return names;
}

std::vector<double> score_rewards(const std::string& name, const std::vector<RewardInput>& batch, const RewardSettings& s) {
  std::vector<double> out;
  if (name == "external") return run_external(batch, s);
  static const std::regex think_layout(R"(^\s*<think>[\s\S]*?</think>\s*\S[\s\S]*$)");
  for (const auto& r : batch) {
    if (name == "accuracy") {
      const auto truth = ground_truth(r.columns);
      if (!truth) {
        out.push_back(NAN);
        continue;
      }
      const auto got = extract_answer(r.completion);
      out.push_back(got && answers_match(*got, *truth) ? 1.0 : 0.0);
    } else if (name == "format") {
      out.push_back(std::regex_match(r.completion, think_layout) ? 1.0 : 0.0);
    } else if (name == "length") {
      const double n = static_cast<double>(r.completion_ids.size()), t = static_cast<double>(std::max<int64_t>(1, s.length_target));
      out.push_back(n <= t ? 0.0 : -std::min(1.0, (n - t) / t));
    } else {
      config_error("unknown reward function '{}' (accuracy, format, length, external)", name);
    }
  }
  return out;
}

}  // namespace gym::rl
