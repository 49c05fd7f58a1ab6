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

// The `device` key: auto (cuda:LOCAL_RANK when LibTorch sees a CUDA device, else cpu) | cpu | cuda
// (cuda:LOCAL_RANK) | cuda:N. A CUDA device that is not visible is a config error naming the key.
// cuda:N with several processes is refused (every rank would take the same GPU).
torch::Device resolve_device(const std::string& spec, const LaunchEnv& env);

// From the launch environment: a single-process context when world = 1, else a c10d group.
// device: resolve_device(device_spec); backend: auto (NCCL when the device is CUDA and NCCL is
// compiled in, else Gloo) | gloo | nccl (needs a CUDA device). Ranks other than 0 log warnings only.
RunContext make_run_context(const LaunchEnv& env, const std::string& backend, int64_t timeout_seconds,
                            const std::string& device_spec = "auto");

}  // namespace gym::dist
