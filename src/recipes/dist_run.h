// What data parallelism adds to the recipes: rank 0 owns output_dir (prepares it, writes logs,
// checkpoints and outputs), every rank's RNG state goes into the checkpoint, and the model is set
// up by rank 0 first (it may create the base model in the cache).
#pragma once
#include <filesystem>
#include <optional>

#include "gym/config/config.h"
#include "gym/dist/context.h"
#include "gym/metrics/trainer_log.h"
#include "gym/recipes/model_setup.h"
#include "gym/recipes/optimization.h"
#include "gym/recipes/run_state.h"

namespace gym::recipes {

// Rank 0 runs prepare_output_dir (lock, fresh / resume / overwrite) and broadcasts its decision:
// the checkpoint to resume from (empty: fresh). Its error stops every rank with the same exit code.
std::filesystem::path prepare_output_dir_on_main(const config::ResolvedConfig& rc, const dist::RunContext& ctx);

// setup_model on rank 0 first, then on the others (a missing base is created once); the
// trainable weights are then broadcast from rank 0.
TrainModel setup_model_in_turn(const config::TrainConfig& c, const dist::RunContext& ctx);

// Collective: gathers every rank's CPU RNG state; rank 0 writes the checkpoint (log only there).
void save_checkpoint_all_ranks(const dist::RunContext& ctx, const config::ResolvedConfig& rc, TrainModel& tm, Optimization& opt,
                               const RunState& state, const std::optional<metrics::TrainerLog>& log, int64_t total_steps);

// Rank 0 writes the final outputs; every rank waits for it, so the run ends together.
void finish_run_all_ranks(const dist::RunContext& ctx, const config::ResolvedConfig& rc, TrainModel& tm, const RunState& state,
                          const std::optional<metrics::TrainerLog>& log, int64_t total_steps, double runtime, int64_t samples_seen);

// The stop signal (SIGINT / SIGTERM) the ranks agree on: the largest over ranks, so every rank stops
// at the same step boundary even when the signal reached them one step apart. Collective.
int agreed_stop_signal(const dist::RunContext& ctx);

}  // namespace gym::recipes
