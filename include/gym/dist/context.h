// What a recipe needs to know about where it runs: its device and its communicator.
#pragma once
#include <torch/types.h>

#include <memory>
#include <string>

#include "gym/dist/comm.h"

namespace gym::dist {

struct RunContext {
  torch::Device device = torch::kCPU;
  std::shared_ptr<Communicator> comm = make_single_process();
  int64_t rank() const { return comm->rank(); }
  int64_t world() const { return comm->world(); }
  bool is_main() const { return comm->is_main(); }
};

// Ranks other than 0 of a multi-process run: log warnings and errors only, tagged "[rank N]".
void configure_rank_logging(const LaunchEnv& env);

// One process: CPU, the single-process communicator.
RunContext single_process_context();

// From the launch environment: a single-process context when world = 1, else a c10d group.
// backend: auto (NCCL when CUDA is usable and compiled in, else Gloo) | gloo | nccl;
// device: cuda:LOCAL_RANK with NCCL, else CPU. Ranks other than 0 log warnings only, "[rank N]".
RunContext make_run_context(const LaunchEnv& env, const std::string& backend, int64_t timeout_seconds);

}  // namespace gym::dist
