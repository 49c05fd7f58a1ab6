// GRPO/GSPO rollouts (src/recipes/rollouts.h).
#include "recipes/rollouts.h"

#include <algorithm>

#include "gym/ops/ops.h"

namespace gym::recipes {

// Generates each prompt's group of G completions in its own batch with its own generator (the
// generation index is the row within the group), then pads the groups to one batch.
GroupRollouts generate_groups(model::CausalLMImpl& m, const std::vector<const data::RlPrompt*>& group_prompts,
                              const std::vector<uint64_t>& keys, int64_t g, const model::SamplingConfig& sc, torch::Device device) {
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  std::vector<model::GenerationOutput> outs;
  int64_t p_len = 1, c_len = 1;
  for (size_t i = 0; i < group_prompts.size(); ++i) {
    const auto& ids = group_prompts[i]->prompt_ids;
    const auto n = static_cast<int64_t>(ids.size());
    auto pids = torch::tensor(ids, torch::kInt64).to(device).unsqueeze(0).expand({g, n}).contiguous();   // [G, n]
    outs.push_back(model::generate(m, pids, torch::ones({g, n}, i64), sc, ops::make_generator(device, keys[i])));
    p_len = std::max(p_len, n);
    c_len = std::max(c_len, outs.back().completion_ids.size(1));
  }
  const int64_t rows = g * static_cast<int64_t>(group_prompts.size());
  GroupRollouts r;
  r.prompt_ids = torch::full({rows, p_len}, sc.pad_id, i64);
  r.prompt_mask = torch::zeros({rows, p_len}, i64);
  r.completion_ids = torch::full({rows, c_len}, sc.pad_id, i64);
  r.completion_mask = torch::zeros({rows, c_len}, i64);
  r.truncated = torch::zeros({rows}, i64.dtype(torch::kBool));
  for (size_t i = 0; i < outs.size(); ++i) {
    const auto n = static_cast<int64_t>(group_prompts[i]->prompt_ids.size());
    const int64_t c = outs[i].completion_ids.size(1), row = static_cast<int64_t>(i) * g;
    r.prompt_ids.narrow(0, row, g).narrow(1, p_len - n, n).copy_(outs[i].sequences.narrow(1, 0, n));
    r.prompt_mask.narrow(0, row, g).narrow(1, p_len - n, n).fill_(1);
    r.completion_ids.narrow(0, row, g).narrow(1, 0, c).copy_(outs[i].completion_ids);
    r.completion_mask.narrow(0, row, g).narrow(1, 0, c).copy_(outs[i].completion_mask);
    r.truncated.narrow(0, row, g).copy_(outs[i].truncated);
  }
  return r;
}

}  // namespace gym::recipes
