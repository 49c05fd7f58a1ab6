#include "gym/dist/launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <thread>

#include "gym/core/error.h"

namespace gym::dist {

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
void on_stop_signal(int sig) { g_stop_signal = sig; }

int64_t parse_count(const std::string& key, const std::string& v) {
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || x < 0) config_error("{} must be a non-negative integer, got '{}'", key, v);
  return x;
}

}  // namespace

LaunchFlags take_launch_flags(std::vector<std::string>& args) {
  LaunchFlags f;
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i], value;
    if (a.rfind("--", 0) != 0) {
      rest.push_back(a);
      continue;
    }
    std::string key = a.substr(2);
    const auto eq = key.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) value = key.substr(eq + 1), key.resize(eq);
    for (auto& ch : key)
      if (ch == '-') ch = '_';
    if (key != "nproc_per_node" && key != "nnodes" && key != "node_rank" && key != "master_addr" && key != "master_port") {
      rest.push_back(a);
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) config_error("--{} needs a value", key);
      value = args[++i];
    }
    if (key == "nproc_per_node") {
      f.nproc_per_node = parse_count(key, value);
      if (f.nproc_per_node < 1) config_error("--nproc_per_node must be at least 1");
    } else if (key == "nnodes") {
      f.nnodes = parse_count(key, value);
      if (f.nnodes < 1) config_error("--nnodes must be at least 1");
    } else if (key == "node_rank") {
      f.node_rank = parse_count(key, value);
    } else if (key == "master_addr") {
      f.master_addr = value;
    } else {
      f.master_port = static_cast<int>(parse_count(key, value));
      if (f.master_port < 1 || f.master_port > 65535) config_error("--master_port must be a TCP port, got {}", value);
    }
  }
  if (f.node_rank >= f.nnodes) config_error("--node_rank {} must be below --nnodes {}", f.node_rank, f.nnodes);
  args = rest;
  return f;
}

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) runtime_error("cannot open a socket to find a free port: {}", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    runtime_error("cannot bind 127.0.0.1 to find a free port: {}", std::strerror(errno));
  }
  const int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

int run_workers(const LaunchFlags& flags, const std::vector<std::string>& worker_args, int grace_seconds) {
  const int64_t nproc = std::max<int64_t>(1, flags.nproc_per_node);
  const int64_t world = nproc * flags.nnodes;
  const std::string addr = flags.master_addr.empty() ? "127.0.0.1" : flags.master_addr;
  const int port = flags.master_port ? flags.master_port : (flags.nnodes == 1 ? free_local_port() : 29500);
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) runtime_error("cannot find this executable (/proc/self/exe) to start workers");
  exe[n] = '\0';
  // Threads: the cores are shared by the workers of this node (torchrun sets OMP_NUM_THREADS=1).
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::string blas_threads = std::to_string(std::max<int64_t>(1, static_cast<int64_t>(cores) / nproc));

  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  const pid_t launcher = ::getpid();
  std::map<pid_t, int64_t> rank_of;
  for (int64_t local = 0; local < nproc; ++local) {
    const int64_t rank = flags.node_rank * nproc + local;
    const pid_t pid = ::fork();
    if (pid < 0) {
      for (auto& [p, r] : rank_of) ::kill(p, SIGKILL);
      runtime_error("fork of worker {} failed: {}", rank, std::strerror(errno));
    }
    if (pid == 0) {
      // The worker dies with the launcher, even when the launcher is SIGKILLed.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != launcher) ::_exit(1);
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(local).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("GROUP_RANK", std::to_string(flags.node_rank).c_str(), 1);
      ::setenv("MASTER_ADDR", addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::setenv("OMP_NUM_THREADS", "1", 0);
      ::setenv("OPENBLAS_NUM_THREADS", blas_threads.c_str(), 0);
      std::vector<std::string> storage{exe};
      storage.insert(storage.end(), worker_args.begin(), worker_args.end());
      std::vector<char*> argv;
      for (auto& s : storage) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv(exe, argv.data());
      std::cerr << "gym: error: cannot start worker " << rank << ": " << std::strerror(errno) << "\n";
      ::_exit(127);
    }
    rank_of[pid] = rank;
  }

  int exit_code = 0;
  bool failed = false;
  auto kill_deadline = std::chrono::steady_clock::time_point::max();
  auto stop_all = [&](int sig) {
    for (auto& [p, r] : rank_of) ::kill(p, sig);
  };
  while (!rank_of.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0 && rank_of.count(pid)) {
      const int64_t rank = rank_of[pid];
      rank_of.erase(pid);
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && !failed) {
        failed = true;
        std::string cause;
        if (WIFSIGNALED(status)) {
          cause = "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
          exit_code = 1;
        } else {
          exit_code = WEXITSTATUS(status);
          cause = "exited with code " + std::to_string(exit_code);
        }
        std::cerr << "gym: error: worker rank " << rank << " (pid " << pid << ") " << cause << "; stopping the other "
                  << rank_of.size() << " worker(s)\n";
        stop_all(SIGTERM);
        kill_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(grace_seconds);
      }
      continue;
    }
    if (pid < 0 && errno == ECHILD) break;
    if (g_stop_signal && !failed) {
      failed = true;
      exit_code = 128 + g_stop_signal;
      std::cerr << "gym: error: launcher got signal " << g_stop_signal << "; stopping " << rank_of.size() << " worker(s)\n";
      stop_all(SIGTERM);
      kill_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(grace_seconds);
    }
    if (std::chrono::steady_clock::now() > kill_deadline) {
      stop_all(SIGKILL);
      kill_deadline = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  return exit_code;
}

}  // namespace gym::dist
