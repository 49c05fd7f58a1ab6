// Entry point of `gym train`: dispatches on the stage to the SFT or RL recipe.
#pragma once
#include "gym/config/config.h"

namespace gym::recipes {

// Prepares output_dir (resume / refuse / overwrite as LLaMA-Factory does), writes
// output_dir/gym_config.yaml, then runs the stage's loop.
void run_training(const config::ResolvedConfig& rc);

void run_sft(const config::ResolvedConfig& rc);   // recipes/sft.cpp
void run_rl(const config::ResolvedConfig& rc);    // recipes/rl.cpp

}  // namespace gym::recipes
