#include "recipes/prediction.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include "gym/dist/comm.h"
#include "gym/model/generate.h"

namespace gym::recipes {

Predictions predict_sft(TrainModel& tm, const std::vector<data::SftExample>& examples, int64_t max_new_tokens, const dist::RunContext& ctx) {
  const auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  const bool was_training = tm.model->is_training();
  tm.model->eval();
  model::SamplingConfig greedy;
  greedy.max_new_tokens = max_new_tokens;
  greedy.stop_ids = {tm.tokenizer.eos_id()};
  if (auto e = tm.tokenizer.im_end_id(); e && *e != tm.tokenizer.eos_id()) greedy.stop_ids.push_back(*e);
  greedy.pad_id = tm.tokenizer.pad_id();
  // This rank's lines, each prefixed by its example index: "i\t{json}\n".
  std::string mine;
  for (size_t i = static_cast<size_t>(ctx.rank()); i < examples.size(); i += static_cast<size_t>(ctx.world())) {
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
    mine += std::to_string(i) + "\t" + line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  }
  if (was_training) tm.model->train();
  std::string all = ctx.world() == 1 ? mine : "";
  for (int64_t r = 0; ctx.world() > 1 && r < ctx.world(); ++r) all += dist::broadcast_string(*ctx.comm, ctx.rank() == r ? mine : "", r);
  Predictions p;
  if (ctx.is_main()) {
    std::vector<std::pair<size_t, std::string>> lines;
    std::istringstream in(all);
    for (std::string l; std::getline(in, l);) {
      const auto tab = l.find('\t');
      lines.emplace_back(std::stoull(l.substr(0, tab)), l.substr(tab + 1));
    }
    std::sort(lines.begin(), lines.end());
    for (const auto& [i, l] : lines) p.jsonl += l + "\n";
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double n = static_cast<double>(examples.size());
  const double steps = std::ceil(n / static_cast<double>(ctx.world()));   // one example per rank and step
  p.metrics = {{"predict_runtime", secs},
               {"predict_samples_per_second", secs > 0 ? n / secs : 0.0},
               {"predict_steps_per_second", secs > 0 ? steps / secs : 0.0}};
  return p;
}

}  // namespace gym::recipes
