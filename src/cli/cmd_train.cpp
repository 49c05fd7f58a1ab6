// gym train CONFIG [overrides] [--nproc_per_node N --nnodes M --node_rank K --master_addr A --master_port P]
#include <spdlog/spdlog.h>
#include <torch/cuda.h>

#include "cli/commands.h"
#include "gym/config/config.h"
#include "gym/dist/context.h"
#include "gym/dist/launcher.h"
#include "gym/recipes/train.h"

namespace gym::cli {

namespace {

// How many workers this invocation starts itself (0: it is the one worker, or a plain single process).
int64_t workers_to_start(const dist::LaunchEnv& env, const dist::LaunchFlags& flags) {
  if (env.source.empty() && !flags.given()) {
    const int64_t visible = dist::cuda_visible_device_count();
    if (torch::cuda::is_available() && torch::cuda::device_count() > 1 && dist::nccl_compiled())
      return static_cast<int64_t>(torch::cuda::device_count());   // one worker per visible GPU (NCCL)
    if (visible > 1 && !torch::cuda::is_available())
      spdlog::warn("CUDA_VISIBLE_DEVICES lists {} devices, but this gym build has no CUDA: training in one CPU process; "
                   "use --nproc_per_node N for N CPU processes over Gloo", visible);
    return 0;
  }
  if (!env.source.empty()) {
    if (flags.given())
      spdlog::warn("started by {} as rank {} of {}: --nproc_per_node/--nnodes are ignored, this process spawns nothing",
                   env.source, env.rank, env.world);
    return 0;
  }
  return flags.nproc_per_node > 0 ? flags.nproc_per_node : 1;
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train (stage sft, grpo or gspo) from a YAML config; overrides after it; "
                                          "--nproc_per_node N starts N data-parallel workers");
  auto file = std::make_shared<std::string>();
  cmd->add_option("config", *file, "YAML config file")->required();
  cmd->allow_extras();
  cmd->footer(
      "\nOverrides: any config key after the YAML file wins over the file, as --key value, --key=value, key=value,\n"
      "dotted group.key=value (trl.beta=0.04) or a bare --flag for true:\n"
      "  gym train cfg.yaml --learning_rate 1e-4 --max_steps 200 --output_dir runs/a --lora_target q_proj,v_proj --bf16\n"
      "Every key, its type, default and meaning: gym config-doc (docs/config.md). See the resolved config\n"
      "with each value's origin first: gym validate cfg.yaml [overrides].\n"
      "Data parallel: --nproc_per_node N [--nnodes M --node_rank K --master_addr A --master_port P], or start\n"
      "gym under torchrun / srun / mpirun.");
  cmd->callback([cmd, file] {
    auto args = cmd->remaining();
    const auto flags = dist::take_launch_flags(args);
    const auto env = dist::read_launch_env();
    dist::configure_rank_logging(env);
    const int64_t spawn = workers_to_start(env, flags);
    if (spawn > 0 && spawn * flags.nnodes > 1) {
      // The launcher: validate once here (against the world size the workers will have), then start them.
      dist::plan_world_size(spawn * flags.nnodes);
      (void)config::load_config(*file, args);
      auto f = flags;
      f.nproc_per_node = spawn;
      std::vector<std::string> worker_args{"train", *file};
      worker_args.insert(worker_args.end(), args.begin(), args.end());
      g_exit_code = dist::run_workers(f, worker_args);
      return;
    }
    const auto rc = config::load_config(*file, args);
    const auto ctx = dist::make_run_context(env, rc.config.dist.backend, rc.config.dist.timeout_seconds, rc.config.training.device);
    recipes::run_training(rc, ctx);
  });
}

}  // namespace gym::cli
