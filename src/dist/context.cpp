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

torch::Device resolve_device(const std::string& spec, const LaunchEnv& env) {
  if (spec == "cpu") return torch::kCPU;
  const int64_t visible = torch::cuda::is_available() ? static_cast<int64_t>(torch::cuda::device_count()) : 0;
  const int64_t local = env.distributed() ? env.local_rank : 0;
  if (spec == "auto") return visible > 0 ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local % visible)) : torch::kCPU;
  if (visible == 0)
    config_error("device: '{}' needs a CUDA device, and this gym sees no CUDA device (none visible, or a CPU-only LibTorch); "
                 "use device: cpu or auto", spec);
  int64_t index = local;
  if (spec.rfind("cuda:", 0) == 0) {
    if (env.distributed())
      config_error("device: '{}' with {} processes would put every rank on one GPU; use device: cuda (each rank takes cuda:LOCAL_RANK)",
                   spec, env.world);
    index = std::stoll(spec.substr(5));
  } else if (spec != "cuda") {
    config_error("device must be auto, cpu, cuda or cuda:N, got '{}'", spec);
  }
  if (index >= visible)
    config_error("device: cuda:{} does not exist: {} CUDA device(s) are visible (CUDA_VISIBLE_DEVICES renumbers them from 0)", index,
                 visible);
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

RunContext make_run_context(const LaunchEnv& env, const std::string& backend, int64_t timeout_seconds, const std::string& device_spec) {
  RunContext ctx;
  ctx.device = resolve_device(device_spec, env);
  if (!env.distributed()) return ctx;
  configure_rank_logging(env);
  const bool cuda = ctx.device.is_cuda();
  std::string chosen = backend;
  if (chosen == "auto") chosen = cuda && nccl_compiled() ? "nccl" : "gloo";
  if (chosen == "nccl" && !nccl_compiled())
    config_error("ddp_backend nccl: this gym build has no ProcessGroupNCCL (a CPU-only LibTorch); use ddp_backend gloo or auto");
  if (chosen == "nccl" && !cuda) config_error("ddp_backend nccl needs device cuda, and the run's device is {}; use ddp_backend gloo", ctx.device.str());
  C10dOptions o;
  o.backend = chosen;
  // LLaMA-Factory examples set ddp_timeout 180000000: cap at a week so that no clock overflows.
  o.timeout = std::chrono::milliseconds(std::clamp<int64_t>(timeout_seconds, 1, 7 * 86400) * 1000);
  ctx.comm = make_c10d(env, o);
  spdlog::info("data parallel: {} processes over {} (this is rank {}, local rank {}, {}), rendezvous {}:{}", env.world, chosen,
               env.rank, env.local_rank, ctx.device.str(), env.master_addr, env.master_port);
  return ctx;
}

}  // namespace gym::dist
