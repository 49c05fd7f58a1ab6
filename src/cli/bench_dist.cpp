// gym bench dist: the all-reduce bandwidth of a flat float32 gradient bucket over c10d (Gloo on
// CPU) between --nproc local processes, and the SFT step time of --nproc processes vs 1 process on
// the same global batch (configs/tiny/sft_tiny.yaml). On a 2-core machine this measures the
// overhead of data parallelism, not a speed-up.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <iostream>

#include "cli/bench.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/dist/context.h"
#include "gym/dist/launcher.h"
#include "gym/model/config.h"
#include "gym/recipes/memory.h"

namespace gym::cli {

namespace {

std::string self_exe() {
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) runtime_error("cannot find this executable");
  exe[n] = '\0';
  return exe;
}

// One worker: times all_reduce of a [numel] float32 bucket; rank 0 writes the figures to `out`.
void allreduce_worker(int64_t numel, const std::string& out) {
  const auto ctx = dist::make_run_context(dist::read_launch_env(), "gloo", 120);
  auto bucket = torch::ones({numel});
  for (int i = 0; i < 3; ++i) ctx.comm->all_reduce(bucket);
  ctx.comm->barrier();
  const int reps = 10;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) ctx.comm->all_reduce(bucket);
  ctx.comm->barrier();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / reps;
  if (ctx.is_main()) {
    const double bytes = static_cast<double>(numel) * 4;
    // bus bandwidth as nccl-tests define it for all-reduce: bytes · 2(n−1)/n per second
    const double n = static_cast<double>(ctx.world());
    nlohmann::json j = {{"bucket_bytes", bytes}, {"seconds_per_all_reduce", secs}, {"algbw_gb_per_s", bytes / secs / 1e9},
                        {"busbw_gb_per_s", bytes * 2 * (n - 1) / n / secs / 1e9}};
    write_file_atomic(out, j.dump(2) + "\n");
  }
}

// Seconds per optimizer step of a tiny SFT run (train_runtime / steps from all_results.json).
double sft_step_seconds(const std::string& extra, int64_t steps, const std::filesystem::path& dir) {
  const std::string cmd = self_exe() + " train " + (source_dir() / "configs" / "tiny" / "sft_tiny.yaml").string() + " --output_dir " +
                          dir.string() + " --max_steps " + std::to_string(steps) +
                          " --save_steps 100000 --plot_loss false --logging_steps 1000 --lora_dropout 0 " + extra + " > " +
                          (dir.string() + ".log") + " 2>&1";
  if (std::system(cmd.c_str()) != 0) runtime_error("bench dist: the training run failed, see {}.log", dir.string());
  const auto j = nlohmann::json::parse(read_file(dir / "all_results.json"));
  return j.at("train_runtime").get<double>() / static_cast<double>(steps);
}

}  // namespace

void add_bench_dist(CLI::App& bench) {
  auto nproc = std::make_shared<int64_t>(2);
  auto numel = std::make_shared<int64_t>(0);
  auto steps = std::make_shared<int64_t>(20);
  auto batch = std::make_shared<int64_t>(8);
  auto json = std::make_shared<bool>(false);
  auto worker_out = std::make_shared<std::string>();
  auto* cmd = bench.add_subcommand("dist", "All-reduce bandwidth of the gradient bucket and SFT step time of N processes vs 1");
  cmd->add_option("--nproc", *nproc, "processes (default 2)")->check(CLI::Range(2, 64));
  cmd->add_option("--numel", *numel, "float32 values in the bucket (default: the tiny SFT config's LoRA parameters)");
  cmd->add_option("--steps", *steps, "SFT steps per timing run (default 20)")->check(CLI::PositiveNumber);
  cmd->add_option("--global_batch", *batch, "global batch of the SFT runs (default 8; divisible by --nproc)")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", *json, "print only the JSON figures");
  cmd->add_option("--allreduce_worker", *worker_out, "internal: run as one all-reduce worker writing to this file")->group("");
  cmd->callback([=] {
    int64_t bucket = *numel;
    if (bucket <= 0) {   // the LoRA parameters of configs/tiny/sft_tiny.yaml: the bucket its steps all-reduce
      const auto rc = config::load_config(source_dir() / "configs" / "tiny" / "sft_tiny.yaml", {});
      bucket = static_cast<int64_t>(
          recipes::estimate_memory(rc.config, model::preset_arch(rc.config.model.create_model_arch, rc.config.model.create_model_preset))
              .trainable_params);
    }
    if (!worker_out->empty()) return allreduce_worker(bucket, *worker_out);
    if (*batch % *nproc != 0) config_error("--global_batch {} must be divisible by --nproc {}", *batch, *nproc);
    const auto dir = std::filesystem::temp_directory_path() / ("gym_bench_dist_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    dist::LaunchFlags f;
    f.nproc_per_node = *nproc;
    const auto result = dir / "allreduce.json";
    ::setenv("GYM_LOG_LEVEL", "warn", 0);   // the workers' logs would interleave with the figures
    if (const int rc = dist::run_workers(f, {"bench", "dist", "--numel", std::to_string(bucket), "--allreduce_worker", result.string()}); rc != 0)
      runtime_error("bench dist: the all-reduce workers failed (exit {})", rc);
    nlohmann::json out = {{"bench", "dist"}, {"nproc", *nproc}, {"backend", "gloo"}, {"all_reduce", nlohmann::json::parse(read_file(result))}};
    const double one = sft_step_seconds("--per_device_train_batch_size " + std::to_string(*batch), *steps, dir / "one");
    const double many = sft_step_seconds("--per_device_train_batch_size " + std::to_string(*batch / *nproc) + " --nproc_per_node " +
                                             std::to_string(*nproc), *steps, dir / "many");
    out["sft_tiny"] = {{"global_batch", *batch}, {"steps", *steps}, {"seconds_per_step_1_process", one},
                       {"seconds_per_step_n_processes", many}, {"n_over_1", many / one}};
    std::filesystem::remove_all(dir);
    if (!*json)
      std::cout << "# all-reduce of " << bucket * 4 / 1024 << " KiB over " << *nproc << " processes (gloo), SFT step " << *nproc
                << " processes vs 1 on global batch " << *batch << "\n";
    std::cout << out.dump(2) << "\n";
  });
}

}  // namespace gym::cli
