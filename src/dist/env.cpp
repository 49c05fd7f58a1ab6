#include "gym/dist/env.h"

#include <cstdlib>

#include "gym/core/error.h"

namespace gym::dist {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = env(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  if (!end || *end != '\0') config_error("environment variable {}='{}' is not an integer", name, v);
  return static_cast<int64_t>(x);
}

int64_t g_planned_world = 0;

}  // namespace

LaunchEnv read_launch_env() {
  LaunchEnv e;
  if (env("WORLD_SIZE") || env("RANK")) {
    e.source = "torchrun";
    e.world = env_int("WORLD_SIZE", 1);
    e.rank = env_int("RANK", 0);
    e.local_rank = env_int("LOCAL_RANK", e.rank);
    e.local_world = env_int("LOCAL_WORLD_SIZE", e.world);
  } else if (env("OMPI_COMM_WORLD_SIZE")) {
    e.source = "mpi";
    e.world = env_int("OMPI_COMM_WORLD_SIZE", 1);
    e.rank = env_int("OMPI_COMM_WORLD_RANK", 0);
    e.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", e.rank);
    e.local_world = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", e.world);
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS")) {
    e.source = "slurm";
    e.world = env_int("SLURM_NTASKS", 1);
    e.rank = env_int("SLURM_PROCID", 0);
    e.local_rank = env_int("SLURM_LOCALID", e.rank);
    e.local_world = env_int("SLURM_NTASKS_PER_NODE", e.world);
  }
  if (const char* a = env("MASTER_ADDR")) e.master_addr = a;
  e.master_port = static_cast<int>(env_int("MASTER_PORT", 29500));
  if (e.world < 1) config_error("world size must be at least 1, got {} ({} environment)", e.world, e.source);
  if (e.rank < 0 || e.rank >= e.world)
    config_error("rank {} is outside the world of {} processes ({} environment)", e.rank, e.world, e.source);
  if (e.local_rank < 0) config_error("local rank must be >= 0, got {}", e.local_rank);
  if (e.master_port <= 0 || e.master_port > 65535) config_error("MASTER_PORT {} is not a TCP port", e.master_port);
  if (e.world > 1 && e.source != "torchrun" && !env("MASTER_ADDR"))
    config_error("{} started {} processes but MASTER_ADDR is not set: export MASTER_ADDR (the host of rank 0) and MASTER_PORT",
                 e.source, e.world);
  return e;
}

int64_t cuda_visible_device_count() {
  const char* v = env("CUDA_VISIBLE_DEVICES");
  if (!v) return std::getenv("CUDA_VISIBLE_DEVICES") ? 0 : -1;
  std::string s = v;
  if (s.empty() || s == "-1" || s == "none" || s == "NoDevFiles") return 0;
  int64_t n = 1;
  for (char ch : s) n += ch == ',';
  return n;
}

int64_t config_world_size() { return g_planned_world > 0 ? g_planned_world : read_launch_env().world; }

void plan_world_size(int64_t world) { g_planned_world = world; }

std::string rank_prefix() {
  try {
    const auto e = read_launch_env();
    return e.world > 1 && e.rank != 0 ? "[rank " + std::to_string(e.rank) + "] " : "";
  } catch (const Error&) {
    return "";
  }
}

}  // namespace gym::dist
