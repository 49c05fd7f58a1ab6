#include "recipes/evaluation.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "gym/checkpoint/output_dir.h"
#include "gym/core/error.h"
#include "gym/data/sampler.h"
#include "gym/dist/comm.h"
#include "recipes/losses.h"

namespace gym::recipes {

namespace fs = std::filesystem;

namespace {
double round_to(double v, double scale) { return std::round(v * scale) / scale; }

// HF's speed_metrics: runtime rounded to 4 decimals, rates to 3.
void add_speed(std::map<std::string, double>& m, double runtime, int64_t samples, int64_t steps) {
  m["eval_runtime"] = round_to(runtime, 1e4);
  m["eval_samples_per_second"] = runtime > 0 ? round_to(static_cast<double>(samples) / runtime, 1e3) : 0.0;
  m["eval_steps_per_second"] = runtime > 0 ? round_to(static_cast<double>(steps) / runtime, 1e3) : 0.0;
}

// Restores the train/eval mode a block changed.
struct EvalMode {
  explicit EvalMode(model::CausalLMImpl& m) : m_(m), was_training_(m.is_training()) { m_.eval(); }
  ~EvalMode() {
    if (was_training_) m_.train();
  }
  model::CausalLMImpl& m_;
  bool was_training_;
};
}  // namespace

EvalSchedule::EvalSchedule(const config::EvalArgs& e, int64_t total_steps) : strategy_(e.strategy), total_(total_steps) {
  // HF: a ratio < 1 is ceil(ratio × max_steps)
  every_ = e.steps < 1 ? std::max<int64_t>(1, static_cast<int64_t>(std::ceil(e.steps * static_cast<double>(total_steps))))
                       : static_cast<int64_t>(e.steps);
}

bool EvalSchedule::due(int64_t step, double epoch_before, double epoch_after) const {
  if (strategy_ == "steps") return every_ > 0 && step % every_ == 0;
  if (strategy_ == "epoch")   // the step that completed an epoch (and the last step of a fractional run)
    return std::floor(epoch_after + 1e-9) > std::floor(epoch_before + 1e-9) || step == total_;
  return false;
}

std::map<std::string, double> evaluate_sft(TrainModel& tm, const std::vector<data::SftExample>& examples, int64_t batch_size,
                                           const dist::RunContext& ctx) {
  const auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  EvalMode mode(*tm.model);
  const int64_t n = static_cast<int64_t>(examples.size());
  const int64_t batches = (n + batch_size - 1) / batch_size;
  double ce_sum = 0, tokens = 0;
  for (int64_t b = ctx.rank(); b < batches; b += ctx.world()) {   // this rank's share of the batches
    std::vector<const data::SftExample*> picked;
    for (int64_t i = b * batch_size; i < std::min(n, (b + 1) * batch_size); ++i) {
      picked.push_back(&examples[static_cast<size_t>(i)]);
      for (size_t t = 1; t < examples[static_cast<size_t>(i)].labels.size(); ++t) tokens += examples[static_cast<size_t>(i)].labels[t] != -100;
    }
    auto batch = data::collate(picked, tm.tokenizer.pad_id());
    // normaliser 1: the batch's summed CE over its labelled next-token pairs
    auto out = causal_lm_loss(*tm.model, batch.input_ids, batch.attention_mask, batch.labels, 1, false);
    ce_sum += out.loss.to(torch::kFloat64).item<double>();
  }
  if (ctx.world() > 1) {
    const auto sums = dist::all_reduce_values(*ctx.comm, {ce_sum, tokens});
    ce_sum = sums[0], tokens = sums[1];
  }
  std::map<std::string, double> m;
  m["eval_loss"] = tokens > 0 ? ce_sum / tokens : NAN;
  add_speed(m, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), n, batches);
  return m;
}

std::map<std::string, double> evaluate_rl(TrainModel& tm, const std::vector<data::RlPrompt>& prompts, const model::SamplingConfig& greedy,
                                          const config::RlArgs& rl, const rl::RewardSettings& rs, const dist::RunContext& ctx) {
  const auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  EvalMode mode(*tm.model);
  const size_t nf = rl.reward_funcs.size();
  std::vector<rl::RewardInput> inputs;
  double length_sum = 0;
  for (size_t i = static_cast<size_t>(ctx.rank()); i < prompts.size(); i += static_cast<size_t>(ctx.world())) {
    const auto& p = prompts[i];
    const auto len = static_cast<int64_t>(p.prompt_ids.size());
    auto ids = torch::tensor(p.prompt_ids, torch::kInt64).unsqueeze(0);   // [1, P]
    auto out = model::generate(*tm.model, ids, torch::ones({1, len}, torch::kInt64), greedy);
    const int64_t c = out.completion_mask[0].sum().item<int64_t>();
    std::vector<int64_t> cids(out.completion_ids[0].data_ptr<int64_t>(), out.completion_ids[0].data_ptr<int64_t>() + c);
    length_sum += static_cast<double>(c);
    inputs.push_back({p.prompt_text, tm.tokenizer.decode(cids, true), cids, p.extra});
  }
  // sums over this rank's completions: [Σ r, Σ r², count, length, per function (Σ, count)]
  std::vector<double> sums(4 + 2 * nf, 0.0);
  std::vector<std::vector<double>> scores(nf);
  for (size_t f = 0; f < nf; ++f) scores[f] = inputs.empty() ? std::vector<double>{} : rl::score_rewards(rl.reward_funcs[f], inputs, rs);
  for (size_t k = 0; k < inputs.size(); ++k) {
    double total = 0;
    bool scored = false;
    for (size_t f = 0; f < nf; ++f) {
      const double v = scores[f][k];
      if (std::isnan(v)) continue;
      total += rl.reward_weights[f] * v, scored = true;
      sums[4 + 2 * f] += v, sums[5 + 2 * f] += 1;
    }
    if (scored) sums[0] += total, sums[1] += total * total, sums[2] += 1;
  }
  sums[3] = length_sum;
  if (ctx.world() > 1) sums = dist::all_reduce_values(*ctx.comm, sums);
  std::map<std::string, double> m;
  const double n = sums[2];
  m["eval_reward"] = n > 0 ? sums[0] / n : NAN;
  m["eval_reward_std"] = n > 1 ? std::sqrt(std::max(0.0, (sums[1] - sums[0] * sums[0] / n) / (n - 1))) : NAN;
  for (size_t f = 0; f < nf; ++f)
    if (sums[5 + 2 * f] > 0) m["eval_rewards/" + rl.reward_funcs[f] + "/mean"] = sums[4 + 2 * f] / sums[5 + 2 * f];
  m["eval_completions/mean_length"] = prompts.empty() ? 0.0 : sums[3] / static_cast<double>(prompts.size());
  const auto count = static_cast<int64_t>(prompts.size());
  add_speed(m, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), count, count);
  return m;
}

bool record_evaluation(const config::EvalArgs& e, RunState& state, const std::map<std::string, double>& metrics) {
  if (e.metric_for_best_model.empty()) return false;
  auto it = metrics.find(e.metric_for_best_model);
  if (it == metrics.end() || !std::isfinite(it->second)) {
    spdlog::warn("metric_for_best_model {} is not finite at step {}: not counted", e.metric_for_best_model, state.global_step);
    if (e.early_stopping_patience > 0) ++state.early_stopping_patience_counter;
    return e.early_stopping_patience > 0 && state.early_stopping_patience_counter >= e.early_stopping_patience;
  }
  const double v = it->second;
  const bool better = !state.best_metric || (e.greater_is_better ? v > *state.best_metric : v < *state.best_metric);
  bool stop = false;
  if (e.early_stopping_patience > 0) {
    // transformers' EarlyStoppingCallback.check_metric_value (before the best metric is updated)
    if (!state.best_metric || (better && std::abs(v - *state.best_metric) > e.early_stopping_threshold))
      state.early_stopping_patience_counter = 0;
    else
      ++state.early_stopping_patience_counter;
    stop = state.early_stopping_patience_counter >= e.early_stopping_patience;
  }
  if (better) state.best_metric = v, state.best_global_step = state.global_step;   // Trainer._determine_best_metric
  return stop;
}

void update_best_checkpoint(const config::TrainConfig& c, RunState& state) {
  if (c.eval.metric_for_best_model.empty() || state.best_global_step <= 0) return;
  const fs::path dir = fs::path(c.output.output_dir) / ("checkpoint-" + std::to_string(state.best_global_step));
  std::error_code ec;
  if (state.best_global_step == state.global_step || fs::exists(dir / "trainer_state.json", ec)) state.best_model_checkpoint = dir.string();
}

void load_best_at_end(const config::TrainConfig& c, TrainModel& tm, const RunState& state) {
  if (!c.eval.load_best_model_at_end) return;
  if (state.best_model_checkpoint.empty()) {
    spdlog::warn("load_best_model_at_end: no checkpoint of a best {} was saved; the final weights are kept", c.eval.metric_for_best_model);
    return;
  }
  if (!fs::exists(fs::path(state.best_model_checkpoint) / "trainer_state.json"))
    runtime_error("load_best_model_at_end: the best checkpoint '{}' is missing", state.best_model_checkpoint);
  spdlog::info("Loading best model from {} (score: {})", state.best_model_checkpoint, state.best_metric ? *state.best_metric : NAN);
  load_trained(tm, state.best_model_checkpoint);
}

void log_evaluation(std::optional<metrics::TrainerLog>& log, const RunState& state, const std::map<std::string, double>& metrics) {
  if (!log) return;
  log->log(state.global_step, state.epoch, metrics);
  std::string text;
  for (const char* k : {"eval_loss", "eval_reward", "eval_reward_std", "eval_runtime"})
    if (auto it = metrics.find(k); it != metrics.end()) text += fmt::format(" {} {:.6g}", k, it->second);
  spdlog::info("eval at step {}:{}", state.global_step, text);
}

void attach_tensorboard(const config::TrainConfig& c, metrics::TrainerLog& log) {
  if (std::find(c.output.report_to.begin(), c.output.report_to.end(), "tensorboard") == c.output.report_to.end()) return;
  const fs::path out = c.output.output_dir;
  const fs::path dir = c.output.logging_dir.empty() ? metrics::default_logging_dir(out) : fs::path(c.output.logging_dir);
  // The top-level entry of output_dir it lies in, so overwrite_output_dir removes it.
  const auto rel = fs::absolute(dir).lexically_normal().lexically_relative(fs::absolute(out).lexically_normal());
  if (!rel.empty() && *rel.begin() != ".." && *rel.begin() != ".") checkpoint::record_outputs(out, {rel.begin()->string()});
  log.enable_tensorboard(dir);
  spdlog::info("TensorBoard: {}", log.tensorboard()->path().string());
}

}  // namespace gym::recipes
