// Umbrella header: log-probs, advantages and policy losses (kept for existing includes; new code
// includes the narrower headers directly).
#pragma once
#include "gym/rl/advantages.h"
#include "gym/rl/logprobs.h"
#include "gym/rl/policy_loss.h"
