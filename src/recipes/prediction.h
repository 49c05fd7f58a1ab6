// do_predict with predict_with_generate, as LLaMA-Factory's SFT predict stage: each example of the
// eval split is cut before its first trained token (its prompt, ending with the assistant header),
// completed greedily up to max_new_tokens, and written with its reference answer as one line of
// generated_predictions.jsonl: {"prompt": the prompt with its special tokens, "predict": the
// completion, "label": the reference, both without special tokens}. Greedy decoding (LLaMA-Factory
// samples with temperature 0.95 / top_p 0.7 by default): the file is reproducible.
//
// Data parallel: each rank completes a contiguous share of the examples; the shares, in rank
// order, are the file's lines in dataset order.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "gym/data/dataset.h"
#include "gym/dist/context.h"
#include "gym/recipes/model_setup.h"

namespace gym::recipes {

struct Predictions {
  std::string jsonl;                       // rank 0: one line per example, in order ("" on other ranks)
  std::map<std::string, double> metrics;   // predict_runtime, predict_samples_per_second, predict_steps_per_second
};

// Collective. `examples`: encoded with labels on the last assistant turn only.
Predictions predict_sft(TrainModel& tm, const std::vector<data::SftExample>& examples, int64_t max_new_tokens, const dist::RunContext& ctx);

}  // namespace gym::recipes
