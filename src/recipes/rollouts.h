// GRPO/GSPO rollouts: each prompt's group of G completions sampled with its own generator (keyed by
// the caller) from its prompt prefilled once; groups share a decode batch only where that changes
// no row's numbers, so a group's completions do not depend on which other groups a rank holds (1
// and 2 processes sample the same tokens). recipes/rl.cpp trains on them; `gym bench gspo` times them.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "gym/data/dataset.h"
#include "gym/model/generate.h"
#include "gym/model/causal_lm.h"

namespace gym::recipes {

struct GroupRollouts {
  torch::Tensor prompt_ids, prompt_mask;           // [n·G, P] left-padded
  torch::Tensor completion_ids, completion_mask;   // [n·G, C] right-padded with pad_id / 0
  torch::Tensor truncated;                         // [n·G] bool
};

// Group i (prompt group_prompts[i], generator keys[i]) fills rows i·G .. i·G + G − 1.
GroupRollouts generate_groups(model::CausalLMImpl& m, const std::vector<const data::RlPrompt*>& group_prompts,
                              const std::vector<uint64_t>& keys, int64_t g, const model::SamplingConfig& sc, torch::Device device);

}  // namespace gym::recipes
