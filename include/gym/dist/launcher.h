// gym's own launcher, as torchrun: `gym train cfg.yaml --nproc_per_node N` starts N worker
// processes of this executable with RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE /
// MASTER_ADDR / MASTER_PORT set, watches them, and ends the whole run when one fails.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gym::dist {

struct LaunchFlags {
  int64_t nproc_per_node = 0;   // 0: not given
  int64_t nnodes = 1, node_rank = 0;
  std::string master_addr;      // default 127.0.0.1 (one node)
  int master_port = 0;          // 0: a free port (one node) / 29500 (several nodes)
  bool given() const { return nproc_per_node > 0 || nnodes > 1; }
};

// Removes the launcher flags (--nproc_per_node, --nproc-per-node, --nnodes, --node_rank,
// --master_addr, --master_port; "--k v" or "--k=v") from args and returns them.
LaunchFlags take_launch_flags(std::vector<std::string>& args);

// Starts flags.nproc_per_node workers running `<this executable> worker_args...`, each dying with
// the launcher (PR_SET_PDEATHSIG). The first worker that fails (non-zero exit or signal) is named
// on stderr ("rank N ... exited with code X / was killed by signal S") and the others get SIGTERM,
// then SIGKILL after grace_seconds. Returns 0 when all succeed, else the failing worker's exit code
// (1 for a signal).
int run_workers(const LaunchFlags& flags, const std::vector<std::string>& worker_args, int grace_seconds = 10);

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_local_port();

}  // namespace gym::dist
