#include "recipes/prediction.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "gym/dist/comm.h"
#include "gym/model/generate.h"
#include "recipes/evaluation.h"

namespace gym::recipes {

Predictions predict_sft(TrainModel& tm, const std::vector<data::SftExample>& examples, int64_t max_new_tokens, const dist::RunContext& ctx) {
  const auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  EvalMode mode(*tm.model);
  model::SamplingConfig greedy;
  greedy.max_new_tokens = max_new_tokens;
  greedy.stop_ids = tm.tokenizer.stop_ids();
  greedy.pad_id = tm.tokenizer.pad_id();
  // This rank's contiguous share [begin, end) of the examples: rank order is dataset order.
  const size_t n_all = examples.size(), world = static_cast<size_t>(ctx.world()), rank = static_cast<size_t>(ctx.rank());
  const size_t begin = n_all * rank / world, end = n_all * (rank + 1) / world;
  std::string mine;
  for (size_t i = begin; i < end; ++i) {
    const auto& ex = examples[i];
    const auto first = std::find_if(ex.labels.begin(), ex.labels.end(), [](int64_t l) { return l != -100; }) - ex.labels.begin();
    std::vector<int64_t> prompt(ex.input_ids.begin(), ex.input_ids.begin() + first), label;
    for (size_t t = static_cast<size_t>(first); t < ex.labels.size(); ++t)
      if (ex.labels[t] != -100) label.push_back(ex.labels[t]);
    auto ids = torch::tensor(prompt, torch::kInt64).to(tm.device).unsqueeze(0);   // [1, P]
    auto out = model::generate(*tm.model, ids, torch::ones_like(ids), greedy);
    const int64_t n = out.completion_mask[0].sum().item<int64_t>();
    const auto completion = out.completion_ids[0].cpu();   // decoded on the host
    const std::vector<int64_t> cids(completion.data_ptr<int64_t>(), completion.data_ptr<int64_t>() + n);
    const nlohmann::ordered_json line = {{"prompt", tm.tokenizer.decode(prompt, false)},
                                         {"predict", tm.tokenizer.decode(cids, true)},
                                         {"label", tm.tokenizer.decode(label, true)}};
    mine += line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  }
  Predictions p;
  p.jsonl = dist::concat_in_rank_order(*ctx.comm, mine);
  if (!ctx.is_main()) p.jsonl.clear();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double n = static_cast<double>(examples.size());
  const double steps = std::ceil(n / static_cast<double>(ctx.world()));   // one example per rank and step
  p.metrics = {{"predict_runtime", secs},
               {"predict_samples_per_second", secs > 0 ? n / secs : 0.0},
               {"predict_steps_per_second", secs > 0 ? steps / secs : 0.0}};
  return p;
}

}  // namespace gym::recipes
