// The sandbox of the external reward command (private to rl/): bubblewrap namespaces (no
// network, the whole filesystem read-only, a private writable temp dir as working directory, an
// own pid namespace so the whole process tree dies with it) plus resource limits, a clean
// environment and no inherited file descriptors. Where namespaces are unavailable, one warning,
// and the limits, environment and descriptor rules still apply. When gym runs as root the command
// runs as user nobody: the kernel never applies RLIMIT_NPROC to uid 0 (a fork bomb would take
// the machine's whole pid space), and `kill -1` or a write outside the sandbox stays harmless.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gym::rl {

struct SandboxLimits {
  bool isolate = true;            // namespaces (bubblewrap); false: limits only
  double cpu_seconds = 60;        // RLIMIT_CPU
  int64_t memory_mb = 4096;       // RLIMIT_AS of every process
  int64_t max_processes = 256;    // processes beyond those the user already runs (RLIMIT_NPROC)
  int64_t max_output_mb = 16;     // stdout + stderr read back, and RLIMIT_FSIZE for files it writes
};

// How the child is started: the argv to exec (bwrap … -- /bin/sh -c command, or /bin/sh -c
// command), its environment, and whether namespaces isolate it.
struct SandboxPlan {
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string workdir;            // the private temp dir (cwd, HOME, TMPDIR)
  bool isolated = false;
  int64_t nproc_limit = 0;
  bool drop_root = false;         // gym is root: the child becomes run_uid/run_gid before exec
  unsigned run_uid = 0, run_gid = 0;
};

// Makes the private temp dir and the plan. The first call checks once whether bubblewrap can
// create the namespaces here (one warning if not).
SandboxPlan plan_sandbox(const std::string& command, const SandboxLimits& limits);

// In the forked child, before exec: only async-signal-safe calls. Starts a new session, sets the
// limits, closes every descriptor above 2, changes to the work dir, leaves root (drop_root).
void apply_child_limits(const SandboxLimits& limits, const SandboxPlan& plan);

// Whether the command would run in namespaces here (bubblewrap present and able to create them
// for the identity the command runs as). Checked once per process.
bool sandbox_isolates(std::string* why = nullptr);

// Removes the private temp dir (and anything the command left there).
void remove_workdir(const SandboxPlan& plan);

}  // namespace gym::rl
