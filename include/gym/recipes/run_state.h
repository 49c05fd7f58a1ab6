// What a run writes besides the loop itself, shared by the SFT and RL recipes: checkpoints
// (written to a temporary folder and renamed), resuming them, and the final outputs.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "gym/config/config.h"
#include "gym/metrics/trainer_log.h"
#include "gym/recipes/model_setup.h"
#include "gym/recipes/optimization.h"

namespace gym::recipes {

struct RunState {
  int64_t global_step = 0;      // optimizer steps done
  double epoch = 0.0;
  int64_t tokens_seen = 0;
  nlohmann::json data_state;    // the sampler's position
  nlohmann::json extra = nlohmann::json::object();   // recipe-specific (e.g. the RL generation buffer)
  // Evaluation (HF TrainerState + EarlyStoppingCallback), saved in every checkpoint's trainer_state.json.
  std::optional<double> best_metric;                 // the best metric_for_best_model value so far
  int64_t best_global_step = 0;                      // the step it was logged at (0: none)
  std::string best_model_checkpoint;                 // output_dir/checkpoint-N of the best step, once saved
  int64_t early_stopping_patience_counter = 0;
  bool stopped_early = false;                        // not saved: a run that stopped early finishes
  std::map<std::string, double> final_eval;          // do_eval's metrics after training (eval_results.json)
  std::string predictions_jsonl;                     // do_predict: generated_predictions.jsonl (rank 0)
  std::map<std::string, double> predict_metrics;     // do_predict: predict_results.json
};

// output_dir/checkpoint-N: adapter (or model), optimizer.pt, rng_state.pt, trainer_state.json.
// rank_rng: with several ranks, every rank's CPU RNG state (rank order), stored beside rank 0's;
// rank_device_rng: the same for the default CUDA generator (LoRA dropout on a GPU), when on CUDA.
void save_checkpoint(const config::ResolvedConfig& rc, TrainModel& tm, const Optimization& opt, const RunState& state,
                     const metrics::TrainerLog& log, int64_t total_steps, const std::vector<torch::Tensor>& rank_rng = {},
                     const std::vector<torch::Tensor>& rank_device_rng = {});

// Reads and checks a checkpoint's trainer_state.json (config error naming the file and field).
RunState read_run_state(const std::filesystem::path& state_path);

// Restores weights, optimizer, RNG and returns the run state of a checkpoint folder.
// rank/world: this process's place; it takes its own RNG state when the checkpoint has one for
// the same world size, else rank 0's (with a warning: another world size is not bit-identical).
RunState load_checkpoint(const std::filesystem::path& dir, TrainModel& tm, Optimization& opt, int64_t rank = 0, int64_t world = 1);

// Final outputs: the adapter (or model) in output_dir, trainer_state.json, all_results.json,
// train_results.json and, with plot_loss, training_<metric>.svg for loss and rewards.
void finish_run(const config::ResolvedConfig& rc, TrainModel& tm, const RunState& state, const metrics::TrainerLog& log,
                int64_t total_steps, double runtime_seconds, int64_t samples_seen);

// Prepares output_dir for a run (LLaMA-Factory's resume / refuse / overwrite rules) and writes
// gym_config.yaml; returns the checkpoint to resume from (empty when fresh).
std::filesystem::path prepare_output_dir(const config::ResolvedConfig& rc);

}  // namespace gym::recipes
