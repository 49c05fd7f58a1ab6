#include "recipes/step_end.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>

#include "gym/core/error.h"
#include "recipes/dist_run.h"
#include "recipes/stop_signal.h"

namespace gym::recipes {

StepEnd::StepEnd(const config::TrainConfig& c, const dist::RunContext& ctx, int64_t total_steps, std::optional<metrics::TrainerLog>& log,
                 RunState& state, std::function<Metrics()> evaluate, std::function<void()> save_checkpoint)
    : c_(c),
      ctx_(ctx),
      total_(total_steps),
      log_(log),
      state_(state),
      evaluate_(std::move(evaluate)),
      save_checkpoint_(std::move(save_checkpoint)),
      schedule_(c.eval, total_steps),
      progress_(total_steps),
      log_every_(c.output.logging_steps < 1 ? std::max<int64_t>(1, static_cast<int64_t>(c.output.logging_steps * total_steps))
                                            : static_cast<int64_t>(c.output.logging_steps)) {
  if (c.eval.load_best_model_at_end && c.eval.steps < 1 && c.output.save_steps % schedule_.every() != 0)
    config_error("key 'save_steps': load_best_model_at_end requires the saving steps to be a round multiple of the evaluation steps, "
                 "but found {}, which is not a round multiple of {}", c.output.save_steps, schedule_.every());
  const char* kill_env = std::getenv("GYM_TEST_SIGKILL_AFTER_STEP");
  const char* kill_rank = std::getenv("GYM_TEST_SIGKILL_RANK");   // with several processes: only this rank dies
  if (kill_env && (!kill_rank || std::atoll(kill_rank) == ctx.rank())) kill_after_ = std::atoll(kill_env);
}

void StepEnd::before_training() {
  if (!c_.eval.on_start || state_.global_step != 0) return;
  log_evaluation(log_, state_, evaluate_());
}

bool StepEnd::log_due() const { return state_.global_step % log_every_ == 0 || state_.global_step == total_; }

void StepEnd::save() {
  update_best_checkpoint(c_, state_);
  save_checkpoint_();
}

bool StepEnd::after_step(const Metrics* metrics, double epoch_before) {
  if (log_) {
    const double elapsed = log_->elapsed_seconds(), remaining = log_->remaining_seconds(state_.global_step);
    if (metrics) {
      log_->log(state_.global_step, state_.epoch, *metrics);
      progress_.update(state_.global_step, *metrics, elapsed, remaining);
    } else {
      progress_.tick(state_.global_step, elapsed, remaining);
    }
  }
  bool stop_early = false;
  if (schedule_.due(state_.global_step, epoch_before, state_.epoch)) {   // after the log, before the checkpoint
    const auto m = evaluate_();
    log_evaluation(log_, state_, m);
    stop_early = record_evaluation(c_.eval, state_, m);
  }
  // Checkpoints; with load_best_model_at_end also at the last step, so the best can be it.
  const int64_t step = state_.global_step;
  const bool saved = step % c_.output.save_steps == 0;
  if (saved && (step < total_ || c_.eval.load_best_model_at_end)) save();
  if (stop_early && step < total_) {
    spdlog::info("early stopping at step {}: {} did not improve by more than {} for {} evaluations", step, c_.eval.metric_for_best_model,
                 c_.eval.early_stopping_threshold, c_.eval.early_stopping_patience);
    state_.stopped_early = true;
    return true;
  }
  if (step == kill_after_) std::raise(SIGKILL);
  // SIGINT / SIGTERM: stop at this step boundary with a checkpoint (unless one was just written).
  // With several processes the ranks agree (max over ranks), so all stop at the same step.
  if (const int sig = agreed_stop_signal(ctx_); sig && step < total_) {
    if (!saved) save();
    exit_for_stop(sig, c_.output.output_dir.c_str(), static_cast<long>(step));
  }
  return false;
}

void StepEnd::after_training(TrainModel& tm) {
  if (ctx_.is_main()) progress_.finish();
  if (c_.eval.load_best_model_at_end) {   // every rank, so that do_eval below evaluates the best weights everywhere
    if (ctx_.world() > 1) ctx_.comm->barrier();
    load_best_at_end(c_, tm, state_);
  }
  if (c_.eval.do_eval) {   // LLaMA-Factory: trainer.evaluate() after training, logged and saved as eval_results.json
    state_.final_eval = evaluate_();
    log_evaluation(log_, state_, state_.final_eval);
  }
}

}  // namespace gym::recipes
