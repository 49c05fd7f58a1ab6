// Entry point of `gym train`: dispatches on the stage to the SFT or RL recipe.
#pragma once
#include "gym/config/config.h"
#include "gym/dist/context.h"

namespace gym::recipes {

// Prepares output_dir (resume / refuse / overwrite as LLaMA-Factory does), writes
// output_dir/gym_config.yaml, then runs the stage's loop.
// ctx: device and communicator (data parallel over ctx.world() ranks; rank 0 owns output_dir).
void run_training(const config::ResolvedConfig& rc, const dist::RunContext& ctx = dist::single_process_context());

void run_sft(const config::ResolvedConfig& rc, const dist::RunContext& ctx);   // recipes/sft.cpp
void run_rl(const config::ResolvedConfig& rc, const dist::RunContext& ctx);    // recipes/rl.cpp

}  // namespace gym::recipes
