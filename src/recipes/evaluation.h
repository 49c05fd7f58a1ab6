// Evaluation during training, shared by the SFT and RL recipes, as the HF Trainer does it:
// when to evaluate (eval_strategy / eval_steps / eval_on_start), the eval metrics (eval_loss for
// SFT; eval_reward / eval_reward_std for RL), HF's best-metric bookkeeping
// (best_metric, best_global_step, best_model_checkpoint) and EarlyStoppingCallback.
//
// Data parallel: every rank evaluates its share (eval batches / prompts i with i % world == rank)
// and the sums are all-reduced, so every rank gets the same metrics and takes the same decisions
// (best checkpoint, early stop) without a broadcast. Evaluation uses no random numbers (no
// dropout, greedy decoding), so a resumed run stays bit-identical.
// Implemented in recipes/run_state.cpp.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gym/config/config.h"
#include "gym/data/dataset.h"
#include "gym/dist/context.h"
#include "gym/metrics/trainer_log.h"
#include "gym/model/generate.h"
#include "gym/recipes/model_setup.h"
#include "gym/recipes/run_state.h"
#include "gym/rl/rewards.h"

namespace gym::recipes {

// Eval mode (no dropout) for a block; the train/eval mode it found is restored at its end.
struct EvalMode {
  explicit EvalMode(model::CausalLMImpl& m) : m_(m), was_training_(m.is_training()) { m_.eval(); }
  ~EvalMode() {
    if (was_training_) m_.train();
  }
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;
  model::CausalLMImpl& m_;
  bool was_training_;
};

class EvalSchedule {
 public:
  EvalSchedule(const config::EvalArgs& e, int64_t total_steps);
  // After optimizer step `step` (1-based count), epoch_before / epoch_after: the sampler's epochs.
  bool due(int64_t step, double epoch_before, double epoch_after) const;
  int64_t every() const { return every_; }

 private:
  std::string strategy_;
  int64_t every_ = 0, total_ = 0;
};

// SFT: token-mean CE over the eval examples (no gradient, dropout off), batches of batch_size.
// Returns eval_loss, eval_runtime, eval_samples_per_second, eval_steps_per_second. Collective.
std::map<std::string, double> evaluate_sft(TrainModel& tm, const std::vector<data::SftExample>& examples, int64_t batch_size,
                                           const dist::RunContext& ctx);

// RL: one greedy completion per held-out prompt, scored by the reward functions (weighted sum,
// unscored functions skipped as in TRL's nansum). Returns eval_reward (mean), eval_reward_std
// (unbiased), eval_rewards/<fn>/mean, eval_completions/mean_length, eval_runtime,
// eval_samples_per_second, eval_steps_per_second. Collective.
std::map<std::string, double> evaluate_rl(TrainModel& tm, const std::vector<data::RlPrompt>& prompts, const model::SamplingConfig& greedy,
                                          const config::RlArgs& rl, const rl::RewardSettings& rs, const dist::RunContext& ctx);

// After an evaluation at state.global_step: EarlyStoppingCallback.check_metric_value against the
// best so far, then HF's _determine_best_metric. Returns true when training should stop.
bool record_evaluation(const config::EvalArgs& e, RunState& state, const std::map<std::string, double>& metrics);

// Before checkpoint-N is written: best_model_checkpoint becomes checkpoint-<best_global_step> when
// that is this step or already on disk (HF's _save_checkpoint).
void update_best_checkpoint(const config::TrainConfig& c, RunState& state);

// At the end with load_best_model_at_end: the best checkpoint's weights replace the current ones.
void load_best_at_end(const config::TrainConfig& c, TrainModel& tm, const RunState& state);

// Logs an evaluation (rank 0's log) and prints it.
void log_evaluation(std::optional<metrics::TrainerLog>& log, const RunState& state, const std::map<std::string, double>& metrics);

// report_to tensorboard: the log's event file goes to logging_dir (default output_dir/runs/<date>_<host>),
// whose top-level entry in output_dir is recorded in the manifest. Rank 0 only.
void attach_tensorboard(const config::TrainConfig& c, metrics::TrainerLog& log);

}  // namespace gym::recipes
