// GRPO/GSPO rollouts (src/recipes/rollouts.h).
#include "recipes/rollouts.h"

#include <algorithm>

#include "gym/ops/ops.h"
#include "gym/ops/small_m_linear.h"

namespace gym::recipes {

// Each prompt is prefilled once and its G completions decoded from that cache; groups are decoded
// together, up to ops::kSmallMRows rows per batch, when every row's decode is independent of the
// others (model::decode_rows_are_independent: the same tokens for any grouping, so 1 and 2
// processes still agree), else one group per batch. Each group samples from its own generator
// (the generation index is the row within the group). The groups are then padded to one batch.
GroupRollouts generate_groups(model::CausalLMImpl& m, const std::vector<const data::RlPrompt*>& group_prompts,
                              const std::vector<uint64_t>& keys, int64_t g, const model::SamplingConfig& sc, torch::Device device) {
  // (sampling as configured: SamplingConfig's defaults decode with the adapter unmerged and draw
  // with ops::sample_categorical. 1 and N processes train bit-identical adapters, so they draw the
  // same tokens with any sampler: DistRl.GrpoAndGspoOnTwoProcessesEqualOne.)
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  const int64_t per_batch = model::decode_rows_are_independent(m) ? std::max<int64_t>(1, ops::kSmallMRows / g) : 1;   // groups
  std::vector<model::GenerationOutput> outs;
  int64_t p_len = 1, c_len = 1;
  for (size_t first = 0; first < group_prompts.size(); first += static_cast<size_t>(per_batch)) {
    const size_t last = std::min(group_prompts.size(), first + static_cast<size_t>(per_batch));
    std::vector<torch::Tensor> prompts;
    std::vector<torch::Generator> gens;
    for (size_t i = first; i < last; ++i) {
      prompts.push_back(torch::tensor(group_prompts[i]->prompt_ids, torch::kInt64).to(device));
      gens.push_back(ops::make_generator(device, keys[i]));
    }
    for (auto& o : model::generate_shared_prompts(m, prompts, g, sc, gens)) outs.push_back(std::move(o));
  }
  for (size_t i = 0; i < outs.size(); ++i) {
    p_len = std::max<int64_t>(p_len, static_cast<int64_t>(group_prompts[i]->prompt_ids.size()));
    c_len = std::max(c_len, outs[i].completion_ids.size(1));
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
