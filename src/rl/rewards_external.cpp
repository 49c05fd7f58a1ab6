// The `external` reward: one /bin/sh command per batch, JSON lines in, one number per line out.
// fork/exec (into the sandbox of rl/sandbox.h) with three pipes and a poll loop, so a command that
// never reads, never writes, never exits or floods its output cannot hang training: at the deadline
// (or the output limit) its whole process tree is killed.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>
#include <tuple>

#include "gym/core/error.h"
#include "gym/rl/rewards.h"
#include "rl/sandbox.h"

namespace gym::rl {

namespace {

using Clock = std::chrono::steady_clock;

struct Fd {
  int fd = -1;
  ~Fd() { close(); }
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

struct Pipe {
  Fd read, write;
};

void make_pipe(Pipe& p) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) runtime_error("external reward: cannot create a pipe ({})", std::strerror(errno));
  p.read.fd = fds[0];
  p.write.fd = fds[1];
}

// Restores SIGPIPE's disposition: a command that exits without reading must not kill gym.
struct IgnoreSigpipe {
  struct sigaction old {};
  IgnoreSigpipe() {
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old);
  }
  ~IgnoreSigpipe() { sigaction(SIGPIPE, &old, nullptr); }
};

std::string tail(const std::string& s, size_t n = 400) {
  std::string t = s.size() > n ? "…" + s.substr(s.size() - n) : s;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  return t.empty() ? "" : "; stderr: " + t;
}

std::optional<double> parse_line(const std::string& command, const std::string& raw) {
  std::string line = raw;
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  line.erase(0, line.find_first_not_of(" \t"));
  if (line == "null" || line == "None") return std::nullopt;   // TRL: this function does not score it
  if (line == "nan" || line == "NaN" || line == "-nan")
    runtime_error("external reward '{}' returned NaN (print null to leave a completion unscored)", command);
  char* end = nullptr;
  const double v = std::strtod(line.c_str(), &end);
  const bool plain = line.find_first_not_of("+-0123456789.eE") == std::string::npos;
  if (line.empty() || !plain || end != line.c_str() + line.size() || !std::isfinite(v))
    runtime_error("external reward '{}' printed '{}', which is not a number", command, line);
  return v;
}

}  // namespace

RewardScores external_reward(const std::vector<RewardInput>& batch, const std::string& command, double timeout_s) {
  RewardSettings s;
  s.external_command = command;
  s.external_timeout = timeout_s;
  return external_reward(batch, s);
}

RewardScores external_reward(const std::vector<RewardInput>& batch, const RewardSettings& settings) {
  const std::string& command = settings.external_command;
  // A deadline that cannot overflow: at most a day.
  const double timeout_s = std::isfinite(settings.external_timeout) ? std::clamp(settings.external_timeout, 1e-3, 86400.0) : 86400.0;
  SandboxLimits limits;
  limits.isolate = settings.external_sandbox;
  limits.cpu_seconds = timeout_s;
  limits.memory_mb = settings.external_memory_mb;
  limits.max_processes = settings.external_max_processes;
  limits.max_output_mb = settings.external_max_output_mb;
  const size_t max_output = static_cast<size_t>(std::max<int64_t>(1, limits.max_output_mb)) << 20;
  std::string input;
  for (const auto& r : batch)
    input += nlohmann::json{{"prompt", r.prompt}, {"completion", r.completion}, {"completion_ids", r.completion_ids},
                            {"columns", r.columns.is_null() ? nlohmann::json::object() : r.columns}}
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
             "\n";
  Pipe in, out, err;
  make_pipe(in);
  make_pipe(out);
  make_pipe(err);
  IgnoreSigpipe ignore_sigpipe;
  const SandboxPlan plan = plan_sandbox(command, limits);
  struct WorkdirGuard {
    const SandboxPlan& p;
    ~WorkdirGuard() { remove_workdir(p); }
  } workdir_guard{plan};
  // argv / envp prepared before fork: the child only calls async-signal-safe functions.
  std::vector<char*> argv, envp;
  for (const auto& a : plan.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : plan.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) runtime_error("external reward '{}': fork failed ({})", command, std::strerror(errno));
  if (pid == 0) {   // child: a new session (its process group is pid), the limits, then exec
    dup2(in.read.fd, 0);
    dup2(out.write.fd, 1);
    dup2(err.write.fd, 2);
    signal(SIGPIPE, SIG_DFL);
    apply_child_limits(limits, plan);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  in.read.close();
  out.write.close();
  err.write.close();
  for (int fd : {in.write.fd, out.read.fd, err.read.fd}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (input.empty()) in.write.close();

  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  // Killing the session's group kills bubblewrap, whose pid namespace takes every process of the
  // command along (setsid'd ones included).
  auto kill_all = [&] {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  };
  auto kill_and_throw = [&] {
    kill_all();
    runtime_error("external reward '{}' timed out after {} s", command, timeout_s);
  };
  std::string stdout_text, stderr_text;
  size_t written = 0;
  char buf[65536];
  while (out.read.fd >= 0 || err.read.fd >= 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) kill_and_throw();
    pollfd fds[3] = {{out.read.fd, POLLIN, 0}, {err.read.fd, POLLIN, 0}, {in.write.fd, POLLOUT, 0}};
    if (poll(fds, 3, static_cast<int>(std::min<int64_t>(left, 100))) < 0 && errno != EINTR)
      runtime_error("external reward '{}': poll failed ({})", command, std::strerror(errno));
    if (in.write.fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = write(in.write.fd, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) in.write.close();   // EPIPE: it stopped reading
    }
    for (auto [fd, text, rev] : {std::tuple<Fd*, std::string*, short>{&out.read, &stdout_text, fds[0].revents},
                                 std::tuple<Fd*, std::string*, short>{&err.read, &stderr_text, fds[1].revents}}) {
      if (fd->fd < 0 || !(rev & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = read(fd->fd, buf, sizeof(buf));
      if (n > 0) text->append(buf, static_cast<size_t>(n));
      else if (n == 0 || (errno != EAGAIN && errno != EINTR)) fd->close();
    }
    if (stdout_text.size() + stderr_text.size() > max_output) {
      kill_all();
      runtime_error("external reward '{}' printed more than {} MB (reward_max_output_mb)", command, max_output >> 20);
    }
  }
  in.write.close();
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {   // output closed; give it until the deadline to exit
    if (Clock::now() >= deadline) kill_and_throw();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(-pid, SIGKILL);   // anything it left running in its session
  if (WIFSIGNALED(status))
    runtime_error("external reward '{}' was killed by signal {}{}", command, WTERMSIG(status), tail(stderr_text));
  // In the sandbox the command runs under bubblewrap, which reports a signal as 128 + its number.
  if (plan.isolated && WEXITSTATUS(status) > 128)
    runtime_error("external reward '{}' was killed by signal {}{}", command, WEXITSTATUS(status) - 128, tail(stderr_text));
  if (WEXITSTATUS(status) != 0)
    runtime_error("external reward '{}' failed (exit status {}){}{}", command, WEXITSTATUS(status),
                  plan.drop_root ? "; it ran as user nobody (gym runs as root): its files must be readable by all users" : "",
                  tail(stderr_text));

  RewardScores scores;
  std::istringstream lines(stdout_text);
  std::string line;
  while (std::getline(lines, line))
    if (line.find_first_not_of(" \t\r") != std::string::npos) scores.push_back(parse_line(command, line));
  if (scores.size() != batch.size())
    runtime_error("external reward '{}' printed {} numbers for {} completions (one line each expected)", command, scores.size(),
                  batch.size());
  return scores;
}

}  // namespace gym::rl
