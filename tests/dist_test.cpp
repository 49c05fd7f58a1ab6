// Data parallel over c10d with real processes: the launcher, torchrun's variables by hand, N
// processes = 1 process with N× the batch (SFT, GRPO, GSPO), a killed worker, kill + resume.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli_util.h"
#include "test_util.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/dist/comm.h"
#include "gym/dist/env.h"
#include "gym/dist/launcher.h"
#include "gym/io/safetensors.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {

const std::string kTiny = (source_dir() / "configs" / "tiny").string();

fs::path out_dir(const std::string& name) { return test::fresh_dir("dist_" + name, false); }
using test::read_log;

// A shell command bounded by `timeout` (exit 124 when it ran out), stdout and stderr together.
test::CommandResult run_shell(const std::string& cmd, int seconds = 300) {
  test::CommandResult r;
  const std::string full = "timeout -s KILL " + std::to_string(seconds) + " sh -c '" + cmd + "' 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) r.output.append(buf, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Largest |a − b| over the tensors of two adapter files (which must hold the same names).
double adapter_max_diff(const fs::path& a, const fs::path& b) {
  io::SafeTensorsFile fa(a / "adapter_model.safetensors"), fb(b / "adapter_model.safetensors");
  EXPECT_EQ(fa.tensors().size(), fb.tensors().size());
  double worst = 0;
  for (const auto& info : fa.tensors())
    worst = std::max(worst, (fa.load(info.name) - fb.load(info.name)).abs().max().item<double>());
  return worst;
}

// Processes whose command line mentions `needle` (a test's unique output dir).
int processes_mentioning(const std::string& needle) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    if (cmdline.find(needle) != std::string::npos && cmdline.find("timeout") == std::string::npos) ++n;
  }
  return n;
}

// The same training command on 1 process with per-device batch 2·`batch` (into `one`) and on 2
// processes with `batch` (into `two`); both must succeed and log `steps` lines. Returns the 2-process output.
std::string run_one_and_two(const std::string& cmd, const fs::path& one, const fs::path& two, int batch, size_t steps) {
  auto r = test::run_gym(cmd + " --output_dir " + one.string() + " --per_device_train_batch_size " + std::to_string(2 * batch));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  auto r2 = test::run_gym(cmd + " --output_dir " + two.string() + " --per_device_train_batch_size " + std::to_string(batch) +
                          " --nproc_per_node 2");
  EXPECT_EQ(r2.exit_code, 0) << r2.output;
  EXPECT_EQ(read_log(one).size(), steps);
  EXPECT_EQ(read_log(two).size(), steps);
  return r2.output;
}

const std::string kSft = "train " + kTiny + "/sft_tiny.yaml --max_steps 20 --lora_dropout 0 --logging_steps 1 --save_steps 1000 "
                                             "--plot_loss false";

}  // namespace

TEST(DistUnit, LaunchEnvironmentAndFlags) {
  setenv("RANK", "1", 1), setenv("WORLD_SIZE", "2", 1), setenv("LOCAL_RANK", "1", 1), setenv("MASTER_PORT", "29611", 1);
  auto e = dist::read_launch_env();
  EXPECT_EQ(e.source, "torchrun");
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.world, 2);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_port, 29611);
  EXPECT_EQ(dist::config_world_size(), 2);
  EXPECT_EQ(dist::rank_prefix(), "[rank 1] ");
  setenv("RANK", "2", 1);
  EXPECT_THROW(dist::read_launch_env(), Error);   // rank outside the world
  for (const char* k : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"}) unsetenv(k);
  setenv("SLURM_PROCID", "3", 1), setenv("SLURM_NTASKS", "4", 1), setenv("SLURM_LOCALID", "1", 1);
  EXPECT_THROW(dist::read_launch_env(), Error);   // several SLURM tasks need MASTER_ADDR
  setenv("MASTER_ADDR", "10.0.0.1", 1);
  e = dist::read_launch_env();
  EXPECT_EQ(e.source, "slurm");
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world, 4);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "10.0.0.1");
  for (const char* k : {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "MASTER_ADDR"}) unsetenv(k);
  e = dist::read_launch_env();
  EXPECT_EQ(e.world, 1);
  EXPECT_EQ(e.source, "");
  EXPECT_EQ(dist::rank_prefix(), "");

  std::vector<std::string> args{"--max_steps", "3", "--nproc_per_node", "2", "--nnodes=1", "--master-port", "29700", "x=1"};
  const auto f = dist::take_launch_flags(args);
  EXPECT_EQ(f.nproc_per_node, 2);
  EXPECT_EQ(f.nnodes, 1);
  EXPECT_EQ(f.master_port, 29700);
  EXPECT_EQ(args, (std::vector<std::string>{"--max_steps", "3", "x=1"}));
  std::vector<std::string> bad{"--nproc_per_node", "two"};
  EXPECT_THROW(dist::take_launch_flags(bad), Error);
}

TEST(DistUnit, SingleProcessCommunicatorIsTheIdentity) {
  auto comm = dist::make_single_process();
  EXPECT_EQ(comm->world(), 1);
  auto t = torch::tensor({1.5, -2.0}, torch::kFloat64);
  comm->all_reduce(t);
  EXPECT_EQ(t[1].item<double>(), -2.0);
  EXPECT_EQ(comm->all_gather(t.unsqueeze(0)).sizes(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(comm->reduce_scatter(t).sizes(), (std::vector<int64_t>{2}));
  EXPECT_EQ(dist::broadcast_string(*comm, "abc"), "abc");
  EXPECT_EQ(dist::all_reduce_scalar(*comm, 3.25), 3.25);
}

// DDP's rule over real Gloo between two threads: a gradient one rank lacks counts as zeros there,
// one that no rank has stays unset (so AdamW skips it as on one process).
TEST(DistUnit, AGradientNoRankHasStaysUnset) {
  const int port = dist::free_local_port();
  std::vector<std::vector<torch::Tensor>> got(2);
  auto worker = [&](int64_t rank) {
    dist::LaunchEnv env;
    env.rank = rank, env.world = 2, env.local_world = 2, env.master_port = port;
    auto comm = dist::make_c10d(env, dist::C10dOptions{"gloo", std::chrono::milliseconds(60000)});
    auto used = torch::zeros({2}).requires_grad_(), on_rank0 = torch::zeros({3}).requires_grad_(),
         unused = torch::zeros({1}).requires_grad_();
    used.mutable_grad() = torch::full({2}, static_cast<float>(rank + 1));
    if (rank == 0) on_rank0.mutable_grad() = torch::full({3}, 5.0F);
    dist::all_reduce_gradients(*comm, {used, on_rank0, unused});
    got[rank] = {used.grad(), on_rank0.grad(), unused.grad()};
  };
  std::thread t0(worker, 0), t1(worker, 1);
  t0.join(), t1.join();
  for (const auto& g : got) {
    ASSERT_EQ(g.size(), 3U);
    EXPECT_TRUE(torch::equal(g[0], torch::full({2}, 3.0F)));
    ASSERT_TRUE(g[1].defined());
    EXPECT_TRUE(torch::equal(g[1], torch::full({3}, 5.0F)));
    EXPECT_FALSE(g[2].defined());
  }
}

TEST(DistSft, TwoProcessesEqualOneWithTwiceTheBatch) {
  const auto one = out_dir("sft1"), two = out_dir("sft2");
  const std::string output = run_one_and_two(kSft, one, two, 4, 20);
  ASSERT_FALSE(::testing::Test::HasFailure());
  EXPECT_NE(output.find("data parallel: 2 processes over gloo"), std::string::npos) << output;
  const auto l1 = read_log(one), l2 = read_log(two);
  for (size_t i = 0; i < l1.size(); ++i) {
    EXPECT_NEAR(l1[i]["loss"].get<double>(), l2[i]["loss"].get<double>(), 1e-5) << "step " << i + 1;
    EXPECT_NEAR(l1[i]["grad_norm"].get<double>(), l2[i]["grad_norm"].get<double>(), 1e-5) << "step " << i + 1;
    EXPECT_EQ(l1[i]["total_tokens"], l2[i]["total_tokens"]) << "step " << i + 1;
  }
  EXPECT_LT(l1.back()["loss"].get<double>(), l1.front()["loss"].get<double>() - 0.5);   // it did train
  EXPECT_LE(adapter_max_diff(one, two), 1e-5);
  // rank 0 alone wrote the outputs, and nothing of rank 1 went to the log
  EXPECT_TRUE(fs::exists(two / "trainer_state.json"));
  EXPECT_EQ(output.find("[rank 1]"), std::string::npos) << output;

  // The same two workers started by hand with torchrun's variables give the same adapter.
  const auto byhand = out_dir("sft_torchrun");
  const int port = dist::free_local_port();
  std::string cmd;
  for (int rank = 0; rank < 2; ++rank)
    cmd += "RANK=" + std::to_string(rank) + " LOCAL_RANK=" + std::to_string(rank) + " WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 " +
           "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " " + GYM_BINARY + " " + kSft + " --output_dir " +
           byhand.string() + " --per_device_train_batch_size 4" + (rank == 0 ? " & p=$!; " : "; b=$?; wait $p; a=$?; exit $((a + b))");
  const auto r = run_shell(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_file(byhand / "adapter_model.safetensors"), read_file(two / "adapter_model.safetensors"));
}

TEST(DistSft, KilledWorkerEndsTheRunAndKillResumesBitIdentical) {
  const auto full = out_dir("full"), killed = out_dir("killed");
  const std::string common = " --max_steps 12 --save_steps 4 --lora_dropout 0.1 --per_device_train_batch_size 4 --nproc_per_node 2 --overwrite_output_dir false";
  auto r = test::run_gym(kSft + " --output_dir " + full.string() + common);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // rank 1 dies by SIGKILL after step 6: the launcher names it and stops rank 0 (bounded: no hang)
  r = run_shell("GYM_TEST_SIGKILL_AFTER_STEP=6 GYM_TEST_SIGKILL_RANK=1 " + std::string(GYM_BINARY) + " " + kSft + " --output_dir " +
                    killed.string() + common,
                60);
  EXPECT_NE(r.exit_code, 124) << "the run hung: " << r.output;
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("worker rank 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("signal 9"), std::string::npos) << r.output;
  EXPECT_EQ(processes_mentioning(killed.string()), 0);
  EXPECT_TRUE(fs::exists(killed / "checkpoint-4" / "trainer_state.json"));
  EXPECT_FALSE(fs::exists(killed / "adapter_model.safetensors"));
  for (const auto& e : fs::directory_iterator(killed))   // no half-written checkpoint under a final name
    if (e.path().filename().string().rfind("checkpoint-", 0) == 0) {
      EXPECT_TRUE(fs::exists(e.path() / "trainer_state.json")) << e.path();
    }
  // the same command resumes from checkpoint-4 and ends bit-identical to the uninterrupted run
  r = test::run_gym(kSft + " --output_dir " + killed.string() + common);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(killed / "adapter_model.safetensors"), read_file(full / "adapter_model.safetensors"));
  EXPECT_EQ(read_log(killed).size(), 12u);
}

namespace {

// GRPO / GSPO on 2 processes against 1 process accumulating the same 2 micro-batches (each of 2
// prompt groups): TRL's equivalence. Each micro-batch is computed in its own geometry on either
// layout (rl.cpp, micro_batch) and the all-reduce adds the two gradients as accumulation does, so
// the runs are bit-identical: every sampled token (rewards, lengths), every loss and the adapter.
// (Any float difference would be amplified by AdamW until a sampling race flips a token.) Both
// layouts run 1 BLAS thread per process.
void expect_rl_equal(const std::string& config, const fs::path& warm, const std::string& name) {
  const auto one = out_dir(name + "1"), two = out_dir(name + "2");
  const std::string common = "train " + kTiny + "/" + config + " --adapter_name_or_path " + warm.string() +
                             " --max_steps 20 --logging_steps 1 --save_steps 1000 --plot_loss false --lora_dropout 0 --per_device_train_batch_size 16";
  // OpenBLAS rounds some products differently with 2 threads than with 1 (measured: a different
  // adapter after 2 steps); the launcher gives each of the 2 workers 1 thread, so the 1-process run
  // gets 1 too.
  auto r = run_shell("OPENBLAS_NUM_THREADS=1 " + std::string(GYM_BINARY) + " " + common + " --output_dir " + one.string() +
                     " --gradient_accumulation_steps 2 --steps_per_generation 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_gym(common + " --output_dir " + two.string() + " --nproc_per_node 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto l1 = read_log(one), l2 = read_log(two);
  ASSERT_EQ(l1.size(), 20u);
  ASSERT_EQ(l2.size(), 20u);
  double signal = 0;
  for (size_t i = 0; i < l1.size(); ++i) {
    for (const char* k : {"reward", "reward_std", "completions/mean_length", "frac_reward_zero_std"})
      EXPECT_EQ(l1[i][k], l2[i][k]) << k << " at step " << i + 1;
    EXPECT_NEAR(l1[i]["loss"].get<double>(), l2[i]["loss"].get<double>(), 1e-9) << "step " << i + 1;
    signal += 1.0 - l1[i]["frac_reward_zero_std"].get<double>();
  }
  EXPECT_GT(signal, 0.0) << "no group had differing rewards: the comparison would be vacuous";
  EXPECT_GT(adapter_max_diff(warm, one), 1e-4);   // the RL steps changed the adapter
  EXPECT_EQ(adapter_max_diff(one, two), 0.0);
}

}  // namespace

TEST(DistRl, GrpoAndGspoOnTwoProcessesEqualOne) {
  const auto warm = out_dir("rl_warm");
  auto r = test::run_gym("train " + kTiny + "/sft_tiny.yaml --max_steps 80 --save_steps 1000 --plot_loss false --output_dir " + warm.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_rl_equal("grpo_tiny.yaml", warm, "grpo");
  expect_rl_equal("gspo_tiny.yaml", warm, "gspo");
  // a prompt's group must fit on one process: 4 completions per rank cannot hold a group of 8
  r = test::run_gym("train " + kTiny + "/gspo_tiny.yaml --adapter_name_or_path " + warm.string() + " --output_dir " +
                    out_dir("gspo_bad").string() + " --per_device_train_batch_size 4 --nproc_per_node 2");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("each prompt's group is generated on one process"), std::string::npos) << r.output;
  EXPECT_EQ(test::count_error_lines(r.output), 1) << r.output;
}

TEST(DistSft, GlobalBatchMoeBalancingEqualsOneProcess) {
  const auto one = out_dir("moe1"), two = out_dir("moe2");
  const std::string moe = kSft + " --model_name_or_path tiny-qwen3-moe --create_model_arch qwen3_moe --lora_target all,gate "
                                 "--router_aux_loss_coef 0.05 --router_aux_loss_scope global --max_steps 10";
  run_one_and_two(moe, one, two, 4, 10);
  ASSERT_FALSE(::testing::Test::HasFailure());
  const auto l1 = read_log(one), l2 = read_log(two);
  for (size_t i = 0; i < l1.size(); ++i) {
    ASSERT_TRUE(l1[i].contains("aux_loss"));
    EXPECT_GT(l1[i]["aux_loss"].get<double>(), 0.5);   // ≈ top_k for a balanced router
    EXPECT_NEAR(l1[i]["aux_loss"].get<double>(), l2[i]["aux_loss"].get<double>(), 1e-5) << "step " << i + 1;
    EXPECT_NEAR(l1[i]["loss"].get<double>(), l2[i]["loss"].get<double>(), 1e-5) << "step " << i + 1;
  }
  // The routed sums run in another order on 2 processes; AdamW's division by sqrt(v) turns that
  // float32 noise into up to 2e-5 after 10 steps on LibTorch 2.6 (0 on 1.13). An expert stepped on
  // one side only (a gradient set to zeros instead of left unset) gave 6e-3.
  EXPECT_LE(adapter_max_diff(one, two), 1e-4);
}

TEST(DistZero, StageTwoEqualsStageZeroAndStageThreeSaysWhatItDoes) {
  const auto dir = out_dir("zero");
  fs::create_directories(dir);
  std::ofstream(dir / "ds2.json") << R"({"train_micro_batch_size_per_gpu": "auto", "zero_optimization": {"stage": 2}})";
  std::ofstream(dir / "ds3.json") << R"({"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"}}})";
  const auto s0 = dir / "s0", s2 = dir / "s2";
  const std::string common = kSft + " --per_device_train_batch_size 4 --nproc_per_node 2 --max_steps 8 --save_steps 4 --weight_decay 0.1";
  auto r = test::run_gym(common + " --output_dir " + s0.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_gym(common + " --output_dir " + s2.string() + " --deepspeed " + (dir / "ds2.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ZeRO stage 2: AdamW state"), std::string::npos) << r.output;
  EXPECT_LE(adapter_max_diff(s0, s2), 1e-5);
  const auto l0 = read_log(s0), l2 = read_log(s2);
  ASSERT_EQ(l0.size(), l2.size());
  for (size_t i = 0; i < l0.size(); ++i) EXPECT_NEAR(l0[i]["loss"].get<double>(), l2[i]["loss"].get<double>(), 1e-5);
  // the checkpoint holds the full (gathered) moments: resuming with 2 processes continues equal
  fs::remove_all(s2 / "checkpoint-8");
  fs::remove(s2 / "adapter_model.safetensors");
  r = test::run_gym(common + " --output_dir " + s2.string() + " --deepspeed " + (dir / "ds2.json").string() +
                    " --overwrite_output_dir false --resume_from_checkpoint " + (s2 / "checkpoint-4").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LE(adapter_max_diff(s0, s2), 1e-5);
  // stage 3 and offload: said, never silently ignored; validate shows the per-process memory
  r = test::run_gym("validate " + kTiny + "/sft_tiny.yaml --deepspeed " + (dir / "ds3.json").string() + " --nproc_per_node 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("the frozen base is replicated on every process (sharding it is future work)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("nothing is offloaded"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("memory estimate (per process of 4, ZeRO stage 3"), std::string::npos) << r.output;
}

TEST(DistBench, ReportsAllReduceBandwidthAndStepTimes) {
  auto r = test::run_gym("bench dist --nproc 2 --json --steps 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto at = r.output.find("{\n");
  ASSERT_NE(at, std::string::npos) << r.output;
  const auto j = nlohmann::json::parse(r.output.substr(at));
  EXPECT_EQ(j["nproc"], 2);
  EXPECT_GT(j["all_reduce"]["bucket_bytes"].get<double>(), 1e4);   // the tiny config's LoRA parameters, float32
  EXPECT_GT(j["all_reduce"]["algbw_gb_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["sft_tiny"]["seconds_per_step_1_process"].get<double>(), 0.0);
  EXPECT_GT(j["sft_tiny"]["seconds_per_step_n_processes"].get<double>(), 0.0);
}

TEST(DistSft, NonFiniteStepsStopEveryRankTogether) {
  const auto out = out_dir("nan");
  auto r = run_shell(std::string(GYM_BINARY) + " " + kSft + " --output_dir " + out.string() +
                         " --max_steps 30 --learning_rate 1e30 --max_nonfinite_steps 3 --per_device_train_batch_size 4 --nproc_per_node 2",
                     120);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  // both ranks skip the same steps and stop at the same one (no rank waits for a peer that left)
  EXPECT_NE(r.output.find("3 consecutive steps had a non-finite"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("worker rank"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("failed (a peer died"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out / "adapter_model.safetensors"));
}
