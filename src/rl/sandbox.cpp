#include "rl/sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "gym/core/error.h"

namespace gym::rl {

namespace {

const char* kBwrap = "/usr/bin/bwrap";

// Who the command runs as: gym's own user, or nobody when gym is root (sandbox.h says why).
struct Identity {
  bool drop_root = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

const Identity& run_identity() {
  static const Identity id = [] {
    Identity i;
    i.uid = ::getuid();
    i.gid = ::getgid();
    if (::geteuid() != 0) return i;
    i.drop_root = true;
    i.uid = i.gid = 65534;
    if (const passwd* pw = ::getpwnam("nobody")) i.uid = pw->pw_uid, i.gid = pw->pw_gid;
    return i;
  }();
  return id;
}

// In a forked child: become the command's user (no supplementary groups). Async-signal-safe.
void leave_root(const Identity& id) {
  if (!id.drop_root) return;
  if (::setgroups(0, nullptr) != 0 || ::setresgid(id.gid, id.gid, id.gid) != 0 || ::setresuid(id.uid, id.uid, id.uid) != 0)
    _exit(126);
}

// Can bubblewrap create the namespaces here, as the command's user? Checked once per process by
// running `true` in them.
bool namespaces_available(std::string* why) {
  static std::once_flag once;
  static bool ok = false;
  static std::string reason;
  std::call_once(once, [] {
    if (::access(kBwrap, X_OK) != 0) {
      reason = "bubblewrap (/usr/bin/bwrap) is not installed";
      return;
    }
    const Identity& id = run_identity();
    const pid_t pid = fork();
    if (pid == 0) {
      const int null = ::open("/dev/null", O_RDWR);
      if (null >= 0) dup2(null, 1), dup2(null, 2);
      leave_root(id);
      execl(kBwrap, "bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--", "/bin/true", static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0) ok = true;
    else reason = id.drop_root ? "bubblewrap cannot create namespaces for user nobody on this machine"
                               : "bubblewrap cannot create namespaces on this machine";
  });
  if (why) *why = reason;
  return ok;
}

// Processes `uid` runs now (RLIMIT_NPROC counts them all).
int64_t user_processes(uid_t uid) {
  int64_t n = 0;
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      struct stat st {};
      if (::stat((std::string("/proc/") + e->d_name).c_str(), &st) == 0 && st.st_uid == uid) ++n;
    }
    ::closedir(d);
  }
  return n;
}

}  // namespace

SandboxPlan plan_sandbox(const std::string& command, const SandboxLimits& limits) {
  SandboxPlan p;
  char tmpl[] = "/tmp/gym-reward-XXXXXX";
  if (!::mkdtemp(tmpl)) runtime_error("external reward: cannot create its temp dir ({})", std::strerror(errno));
  p.workdir = tmpl;
  const Identity& id = run_identity();
  p.drop_root = id.drop_root;
  p.run_uid = id.uid;
  p.run_gid = id.gid;
  if (p.drop_root && ::chown(tmpl, id.uid, id.gid) != 0) {
    const int err = errno;
    remove_workdir(p);
    runtime_error("external reward: cannot hand its temp dir to user nobody ({})", std::strerror(err));
  }
  p.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + p.workdir, "TMPDIR=" + p.workdir, "LANG=C.UTF-8", "LC_ALL=C.UTF-8"};
  p.nproc_limit = user_processes(id.uid) + limits.max_processes;
  std::string why;
  p.isolated = limits.isolate && namespaces_available(&why);
  if (limits.isolate && !p.isolated) {
    static std::once_flag warned;
    std::call_once(warned, [&] {
      spdlog::warn("external reward: {}; the command runs without namespaces (network and filesystem not isolated), with its "
                   "resource limits, clean environment and private temp dir",
                   why);
    });
  }
  if (p.isolated) {
    p.argv = {kBwrap, "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
              "--bind", p.workdir, p.workdir, "--chdir", p.workdir, "--clearenv"};
    for (const auto& kv : p.env) {
      const auto eq = kv.find('=');
      p.argv.insert(p.argv.end(), {"--setenv", kv.substr(0, eq), kv.substr(eq + 1)});
    }
    p.argv.insert(p.argv.end(), {"--", "/bin/sh", "-c", command});
  } else {
    p.argv = {"/bin/sh", "-c", command};
  }
  return p;
}

void apply_child_limits(const SandboxLimits& limits, const SandboxPlan& plan) {
  ::setsid();   // its own session and process group (pgid = pid): killed as one
  auto set = [](int resource, rlim_t value) {
    rlimit r{value, value};
    ::setrlimit(resource, &r);
  };
  const double cpu = std::isfinite(limits.cpu_seconds) ? std::clamp(std::ceil(limits.cpu_seconds), 1.0, 1e6) : 1e6;
  set(RLIMIT_CPU, static_cast<rlim_t>(cpu));
  if (limits.memory_mb > 0) set(RLIMIT_AS, static_cast<rlim_t>(limits.memory_mb) << 20);
  if (limits.max_processes > 0) set(RLIMIT_NPROC, static_cast<rlim_t>(plan.nproc_limit));
  if (limits.max_output_mb > 0) set(RLIMIT_FSIZE, static_cast<rlim_t>(limits.max_output_mb) << 20);
  set(RLIMIT_CORE, 0);
  // No inherited descriptors: everything above stderr goes.
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
    for (int fd = 3; fd < 65536; ++fd) ::close(fd);
  if (::chdir(plan.workdir.c_str()) != 0) _exit(126);
  leave_root({plan.drop_root, static_cast<uid_t>(plan.run_uid), static_cast<gid_t>(plan.run_gid)});
}

bool sandbox_isolates(std::string* why) { return namespaces_available(why); }

void remove_workdir(const SandboxPlan& plan) {
  if (plan.workdir.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(plan.workdir, ec);
}

}  // namespace gym::rl
