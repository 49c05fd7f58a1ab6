// The launch environment of this process: the ONE place that reads RANK / WORLD_SIZE /
// LOCAL_RANK / MASTER_ADDR / MASTER_PORT (torchrun), SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID
// (srun) and OMPI_COMM_WORLD_* (mpirun). Everything else asks here.
#pragma once
#include <cstdint>
#include <string>

namespace gym::dist {

struct LaunchEnv {
  int64_t rank = 0, world = 1;
  int64_t local_rank = 0, local_world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string source;   // "torchrun" (RANK/WORLD_SIZE, also gym's own launcher), "slurm", "mpi"; empty: one process
  bool distributed() const { return world > 1; }
};

// Reads the environment (first found: torchrun variables, OMPI_COMM_WORLD_*, SLURM_*). A world
// of 1 is a plain single process. Throws config_error on inconsistent values (rank ≥ world, ...).
LaunchEnv read_launch_env();

// The world size the config resolves against (generation_batch_size, DeepSpeed train_batch_size):
// the planned one while gym's launcher validates a config before spawning, else the environment's.
int64_t config_world_size();
void plan_world_size(int64_t world);   // the launcher, in the parent process only

// Entries of CUDA_VISIBLE_DEVICES (-1 when unset): the devices a CUDA build would see.
int64_t cuda_visible_device_count();

// "[rank N] " for ranks other than 0 of a multi-process run, else "": prefixes warnings and errors.
std::string rank_prefix();

}  // namespace gym::dist
