#include "recipes/dist_run.h"

#include "gym/checkpoint/checkpoint.h"
#include "gym/core/error.h"
#include "gym/lora/adapter.h"
#include "gym/ops/ops.h"
#include "recipes/stop_signal.h"

namespace gym::recipes {

std::filesystem::path prepare_output_dir_on_main(const config::ResolvedConfig& rc, const dist::RunContext& ctx) {
  if (ctx.world() == 1) return prepare_output_dir(rc);
  // The decision travels as text: "ok\n<resume path>" or "<exit code>\n<message>".
  std::string decision;
  std::exception_ptr failure;
  if (ctx.is_main()) {
    try {
      decision = "ok\n" + prepare_output_dir(rc).string();
    } catch (const Error& e) {
      decision = std::to_string(e.exit_code()) + "\n" + e.what();
      failure = std::current_exception();
    } catch (const std::exception& e) {
      decision = "1\n" + std::string(e.what());
      failure = std::current_exception();
    }
  }
  decision = dist::broadcast_string(*ctx.comm, decision);
  if (failure) std::rethrow_exception(failure);
  const auto nl = decision.find('\n');
  const std::string status = decision.substr(0, nl), rest = decision.substr(nl + 1);
  if (status == "ok") return rest;
  throw Error(status == "2" ? ErrorKind::Config : ErrorKind::Runtime, "rank 0 could not prepare output_dir: " + rest);
}

TrainModel setup_model_in_turn(const config::TrainConfig& c, const dist::RunContext& ctx) {
  if (!ctx.is_main()) ctx.comm->barrier();
  TrainModel tm = setup_model(c, ctx.device);
  if (ctx.is_main()) ctx.comm->barrier();
  // As DDP at construction: every rank starts from rank 0's trainable weights (LoRA's random init).
  if (ctx.world() > 1) {
    torch::NoGradGuard ng;
    for (auto& [name, p] : lora::trainable_parameters(*tm.model)) {
      auto t = p.detach();
      ctx.comm->broadcast(t, 0);
    }
  }
  return tm;
}

void save_checkpoint_all_ranks(const dist::RunContext& ctx, const config::ResolvedConfig& rc, TrainModel& tm, Optimization& opt,
                               const RunState& state, const std::optional<metrics::TrainerLog>& log, int64_t total_steps) {
  opt.prepare_save();   // ZeRO: the moments gathered from every rank
  std::vector<torch::Tensor> rng;
  if (ctx.world() > 1) {
    auto all = ctx.comm->all_gather(ops::default_generator_state(torch::kCPU).unsqueeze(0));   // [world, S] uint8
    for (int64_t r = 0; r < ctx.world(); ++r) rng.push_back(all[r].clone());
  }
  std::vector<torch::Tensor> device_rng;
  if (ctx.world() > 1 && tm.device.is_cuda()) {
    auto all = ctx.comm->all_gather(ops::default_generator_state(tm.device).unsqueeze(0));   // [world, S] uint8
    for (int64_t r = 0; r < ctx.world(); ++r) device_rng.push_back(all[r].clone());
  }
  if (ctx.is_main()) save_checkpoint(rc, tm, opt, state, *log, total_steps, rng, device_rng);
}

void finish_run_all_ranks(const dist::RunContext& ctx, const config::ResolvedConfig& rc, TrainModel& tm, const RunState& state,
                          const std::optional<metrics::TrainerLog>& log, int64_t total_steps, double runtime, int64_t samples_seen) {
  if (ctx.is_main()) finish_run(rc, tm, state, *log, total_steps, runtime, samples_seen);
  ctx.comm->barrier();
}

int agreed_stop_signal(const dist::RunContext& ctx) {
  const int own = stop_requested();
  if (ctx.world() == 1) return own;
  return static_cast<int>(dist::all_reduce_scalar(*ctx.comm, own, dist::ReduceOp::Max));
}

}  // namespace gym::recipes
