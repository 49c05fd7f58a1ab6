#include <spdlog/spdlog.h>
#include <torch/cuda.h>

#include <algorithm>

#include "gym/core/error.h"
#include "gym/dist/context.h"

namespace gym::dist {

RunContext single_process_context() { return RunContext{}; }

void configure_rank_logging(const LaunchEnv& env) {
  if (!env.distributed() || env.rank == 0) return;
  // Only rank 0 reports progress; the others say something only when it matters, named.
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ [rank " + std::to_string(env.rank) + "] %v");
  if (spdlog::get_level() < spdlog::level::warn) spdlog::set_level(spdlog::level::warn);
}

RunContext make_run_context(const LaunchEnv& env, const std::string& backend, int64_t timeout_seconds) {
  RunContext ctx;
  if (!env.distributed()) return ctx;
  configure_rank_logging(env);
  const bool cuda = torch::cuda::is_available();
  std::string chosen = backend;
  if (chosen == "auto") chosen = cuda && nccl_compiled() ? "nccl" : "gloo";
  if (chosen == "nccl" && !nccl_compiled())
    config_error("ddp_backend nccl: this gym build has no ProcessGroupNCCL (a CPU-only LibTorch); use ddp_backend gloo or auto");
  if (chosen == "nccl" && !cuda) config_error("ddp_backend nccl needs CUDA devices, and none is visible; use ddp_backend gloo");
  C10dOptions o;
  o.backend = chosen;
  // LLaMA-Factory examples set ddp_timeout 180000000: cap at a week so that no clock overflows.
  o.timeout = std::chrono::milliseconds(std::clamp<int64_t>(timeout_seconds, 1, 7 * 86400) * 1000);
  if (chosen == "nccl") ctx.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
  ctx.comm = make_c10d(env, o);
  spdlog::info("data parallel: {} processes over {} (this is rank {}, local rank {}, {}), rendezvous {}:{}", env.world, chosen,
               env.rank, env.local_rank, ctx.device.str(), env.master_addr, env.master_port);
  return ctx;
}

}  // namespace gym::dist
