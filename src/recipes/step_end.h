// The end of every optimizer step, shared by the SFT and RL recipes, in the HF Trainer's order:
// the log line (or a progress tick), evaluation, the checkpoint, early stopping, the kill test
// hook, then SIGINT / SIGTERM. Also what comes before the first step (eval_on_start) and after the
// last (the progress bar's end, load_best_model_at_end, do_eval).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "gym/config/config.h"
#include "gym/dist/context.h"
#include "gym/metrics/trainer_log.h"
#include "gym/recipes/model_setup.h"
#include "gym/recipes/run_state.h"
#include "recipes/evaluation.h"

namespace gym::recipes {

class StepEnd {
 public:
  using Metrics = std::map<std::string, double>;
  // Refuses (config_error) load_best_model_at_end with save_steps not a multiple of the eval steps.
  StepEnd(const config::TrainConfig& c, const dist::RunContext& ctx, int64_t total_steps, std::optional<metrics::TrainerLog>& log,
          RunState& state, std::function<Metrics()> evaluate, std::function<void()> save_checkpoint);

  // Before the first step: eval_on_start on a fresh run (a resumed one has its line).
  void before_training();
  // Whether the step just counted in state.global_step writes a log line (logging_steps, the last step).
  bool log_due() const;
  // After the step: logs `metrics` (given exactly when log_due()) or ticks the progress bar,
  // evaluates when due, saves when due; exits the process on an agreed stop signal (after a
  // checkpoint). Returns true when early stopping ends training.
  bool after_step(const Metrics* metrics, double epoch_before);
  // After the loop: the progress bar's last line, load_best_model_at_end, do_eval.
  void after_training(TrainModel& tm);

 private:
  void save();

  const config::TrainConfig& c_;
  const dist::RunContext& ctx_;
  int64_t total_;
  std::optional<metrics::TrainerLog>& log_;
  RunState& state_;
  std::function<Metrics()> evaluate_;
  std::function<void()> save_checkpoint_;
  EvalSchedule schedule_;
  metrics::Progress progress_;
  int64_t log_every_;
  int64_t kill_after_ = -1;   // GYM_TEST_SIGKILL_AFTER_STEP (GYM_TEST_SIGKILL_RANK): tests prove checkpoints survive a kill
};

}  // namespace gym::recipes
