#include "gym/recipes/run_state.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <chrono>
#include <algorithm>
#include <cmath>
#include <torch/serialize.h>

#include "gym/checkpoint/checkpoint.h"
#include "gym/checkpoint/output_dir.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/metrics/plot.h"
#include "gym/data/sampler.h"
#include "gym/dist/comm.h"
#include "gym/ops/ops.h"
#include "recipes/evaluation.h"
#include "recipes/losses.h"

namespace gym::recipes {

namespace fs = std::filesystem;

namespace {

// HF's TrainerState.stateful_callbacks entry of EarlyStoppingCallback (its counter survives resume).
nlohmann::json early_stopping_callback_json(const config::TrainConfig& c, const RunState& s) {
  if (c.eval.early_stopping_patience <= 0) return nlohmann::json::object();
  return {{"EarlyStoppingCallback",
           {{"args", {{"early_stopping_patience", c.eval.early_stopping_patience}, {"early_stopping_threshold", c.eval.early_stopping_threshold}}},
            {"attributes", {{"early_stopping_patience_counter", s.early_stopping_patience_counter}}}}}};
}

nlohmann::json trainer_state_json(const config::TrainConfig& c, const RunState& s, const metrics::TrainerLog& log,
                                  int64_t total_steps) {
  nlohmann::json history = nlohmann::json::array();
  for (const auto& l : log.history()) {
    nlohmann::json h = {{"step", l.value("current_steps", 0)}, {"epoch", l.value("epoch", 0.0)}};
    for (auto it = l.begin(); it != l.end(); ++it)
      if (it->is_number() && it.key() != "current_steps" && it.key() != "total_steps" && it.key() != "percentage")
        h[it.key() == "lr" ? "learning_rate" : it.key()] = *it;
    history.push_back(h);
  }
  return {{"global_step", s.global_step},
          {"epoch", s.epoch},
          {"max_steps", total_steps},
          {"logging_steps", c.output.logging_steps},
          {"save_steps", c.output.save_steps},
          {"train_batch_size", c.training.per_device_train_batch_size},
          {"num_train_epochs", c.training.num_train_epochs},
          {"num_input_tokens_seen", s.tokens_seen},
          {"total_flos", 0},
          {"log_history", history},
          {"best_metric", s.best_metric ? nlohmann::json(*s.best_metric) : nlohmann::json()},
          {"best_global_step", s.best_global_step ? nlohmann::json(s.best_global_step) : nlohmann::json()},
          {"best_model_checkpoint", s.best_model_checkpoint.empty() ? nlohmann::json() : nlohmann::json(s.best_model_checkpoint)},
          {"eval_steps", c.eval.during_training() ? nlohmann::json(c.eval.steps) : nlohmann::json()},
          {"stateful_callbacks", early_stopping_callback_json(c, s)},
          {"is_local_process_zero", true},
          {"is_world_process_zero", true},
          {"gym_data_state", s.data_state},
          {"gym_extra", s.extra}};
}

}  // namespace

fs::path prepare_output_dir(const config::ResolvedConfig& rc) {
  const auto& c = rc.config;
  const fs::path out = c.output.output_dir;
  // Before anything in output_dir is touched: never write into a folder the run reads, never
  // share output_dir with another run.
  const std::vector<std::pair<std::string, fs::path>> inputs = {{"model_name_or_path", c.model.model_name_or_path},
                                                                {"adapter_name_or_path", c.model.adapter_name_or_path},
                                                                {"dataset_dir", c.data.dataset_dir}};
  checkpoint::check_not_inside_inputs(out, inputs);
  std::error_code ec;
  const bool dir_existed = fs::exists(out, ec), lock_existed = fs::exists(fs::symlink_status(out / checkpoint::kLockName, ec));
  checkpoint::lock_output_dir(out);
  checkpoint::StartPlan plan;
  try {
    plan = checkpoint::plan_start(c.output, inputs);
  } catch (...) {
    // A refused start leaves no trace: neither a lock file in someone's folder nor a folder gym made.
    if (!lock_existed) fs::remove(out / checkpoint::kLockName, ec);
    if (!dir_existed) fs::remove(out, ec);   // only when empty
    throw;
  }
  checkpoint::record_outputs(out, {"gym_config.yaml", "trainer_log.jsonl"});
  write_file_atomic(out / "gym_config.yaml",
                    "# resolved by gym from " + (rc.files.empty() ? std::string("overrides") : rc.files.back().string()) + "\n" +
                        rc.to_yaml());
  return plan.resume_from;
}

void save_checkpoint(const config::ResolvedConfig& rc, TrainModel& tm, const Optimization& opt, const RunState& state,
                     const metrics::TrainerLog& log, int64_t total_steps, const std::vector<torch::Tensor>& rank_rng,
                     const std::vector<torch::Tensor>& rank_device_rng) {
  const auto& c = rc.config;
  const fs::path dir = fs::path(c.output.output_dir) / ("checkpoint-" + std::to_string(state.global_step));
  checkpoint::record_outputs(c.output.output_dir, {dir.filename().string()});
  write_dir_atomic(dir, [&](const fs::path& tmp) {
    save_trained(tm, c, tmp);
    opt.save(tmp);
    torch::serialize::OutputArchive rng;
    rng.write("cpu", ops::default_generator_state(torch::kCPU));
    if (rank_rng.size() > 1) {
      rng.write("world_size", torch::tensor(static_cast<int64_t>(rank_rng.size())));
      for (size_t r = 0; r < rank_rng.size(); ++r) rng.write("cpu_rank_" + std::to_string(r), rank_rng[r]);
    }
    if (tm.device.is_cuda()) {
      rng.write("cuda", ops::default_generator_state(tm.device));
      for (size_t r = 0; rank_device_rng.size() > 1 && r < rank_device_rng.size(); ++r)
        rng.write("cuda_rank_" + std::to_string(r), rank_device_rng[r]);
    }
    save_archive(rng, tmp / "rng_state.pt");
    // trainer_state.json last: list_checkpoints only counts folders that have it.
    write_file_atomic(tmp / "trainer_state.json", trainer_state_json(c, state, log, total_steps).dump(2) + "\n");
  });
  if (c.output.save_total_limit)
    checkpoint::rotate_checkpoints(c.output.output_dir, *c.output.save_total_limit, state.best_model_checkpoint);
}

RunState load_checkpoint(const fs::path& dir, TrainModel& tm, Optimization& opt, int64_t rank, int64_t world) {
  RunState s = read_run_state(dir / "trainer_state.json");
  load_trained(tm, dir);
  opt.load(dir);
  const auto rng_path = dir / "rng_state.pt";
  if (!fs::exists(rng_path)) config_error("checkpoint '{}' has no rng_state.pt", dir.string());
  try {
    torch::serialize::InputArchive rng;
    rng.load_from(rng_path.string());
    torch::Tensor cpu;
    rng.read("cpu", cpu);
    torch::Tensor saved_world, own;
    const int64_t ckpt_world = rng.try_read("world_size", saved_world) ? saved_world.item<int64_t>() : 1;
    if (ckpt_world == world && world > 1 && rng.try_read("cpu_rank_" + std::to_string(rank), own)) cpu = own;
    if (ckpt_world != world && rank == 0)
      spdlog::warn("{} was written by {} process(es), this run has {}: the data order and batches continue, but random "
                   "streams (dropout) restart from rank 0's state, so the run is not bit-identical to an uninterrupted one",
                   dir.string(), ckpt_world, world);
    ops::set_default_generator_state(torch::kCPU, cpu);
    torch::Tensor cuda;
    if (tm.device.is_cuda() && rng.try_read("cuda", cuda)) {
      if (ckpt_world == world && world > 1) rng.try_read("cuda_rank_" + std::to_string(rank), cuda);
      ops::set_default_generator_state(tm.device, cuda);
    }
  } catch (const c10::Error& e) {
    config_error("{}: unreadable or truncated ({})", rng_path.string(), std::string(e.what_without_backtrace()).substr(0, 160));
  }
  spdlog::info("resumed from {} at step {}", dir.string(), s.global_step);
  return s;
}

// The final files of a run (adapter or model, trainer_state.json, results, plots).
void finish_outputs(const config::ResolvedConfig& rc, TrainModel& tm, const RunState& state, const metrics::TrainerLog& log,
                    int64_t total_steps, double runtime, int64_t samples_seen);

void finish_run(const config::ResolvedConfig& rc, TrainModel& tm, const RunState& state, const metrics::TrainerLog& log,
                int64_t total_steps, double runtime, int64_t samples_seen) {
  const auto& c = rc.config;
  const fs::path out = c.output.output_dir;
  // A run that did not learn anything usable ends with exit 1, and its outputs are not written.
  // the last training line (evaluation lines carry eval_* metrics only)
  auto train_line = std::find_if(log.history().rbegin(), log.history().rend(), [](const nlohmann::json& l) {
    for (auto it = l.begin(); it != l.end(); ++it)
      if (it.key().rfind("eval_", 0) == 0) return false;
    return true;
  });
  if (train_line != log.history().rend()) {
    const auto& last = *train_line;
    if (last.contains("loss") && !(last["loss"].is_number() && std::isfinite(last["loss"].get<double>())))
      runtime_error("the last logged loss (step {}) is not finite: the adapter is not saved; lower learning_rate or check the "
                    "data, then rerun (checkpoints before the divergence are kept)",
                    state.global_step);
    if (last.contains("skipped_steps") && last["skipped_steps"].is_number() &&
        last["skipped_steps"].get<double>() >= static_cast<double>(state.global_step))
      runtime_error("every one of the {} steps was skipped (non-finite loss or gradient): nothing was trained", state.global_step);
  }
  checkpoint::write_recorded(out, [&] { finish_outputs(rc, tm, state, log, total_steps, runtime, samples_seen); });
}

void finish_outputs(const config::ResolvedConfig& rc, TrainModel& tm, const RunState& state, const metrics::TrainerLog& log,
                    int64_t total_steps, double runtime, int64_t samples_seen) {
  const auto& c = rc.config;
  const fs::path out = c.output.output_dir;
  // all_results.json: train_results (not for a prediction run, do_train: false, which trained and
  // saves nothing), then eval and predict results.
  nlohmann::json results = nlohmann::json::object();
  if (c.eval.do_train) {
    save_trained(tm, c, out);
    double loss_sum = 0;
    int n = 0;
    for (const auto& l : log.history())
      if (l.contains("loss")) loss_sum += l["loss"].get<double>(), ++n;
    results = {{"epoch", state.epoch},
               {"total_flos", 0},
               {"train_loss", n ? loss_sum / n : 0.0},
               {"train_runtime", runtime},
               {"train_samples_per_second", runtime > 0 ? samples_seen / runtime : 0.0},
               {"train_steps_per_second", runtime > 0 ? state.global_step / runtime : 0.0},
               {"num_input_tokens_seen", state.tokens_seen}};
    write_file_atomic(out / "train_results.json", results.dump(2) + "\n");
  }
  if (!state.final_eval.empty()) {   // do_eval: as LLaMA-Factory's trainer.save_metrics("eval", ...)
    nlohmann::json eval = {{"epoch", state.epoch}};
    for (const auto& [k, v] : state.final_eval) eval[k] = v, results[k] = v;
    write_file_atomic(out / "eval_results.json", eval.dump(2) + "\n");
  }
  if (!state.predict_metrics.empty()) {   // do_predict: as LLaMA-Factory's save_predictions + save_metrics("predict", ...)
    write_file_atomic(out / "generated_predictions.jsonl", state.predictions_jsonl);
    nlohmann::json predict;
    for (const auto& [k, v] : state.predict_metrics) predict[k] = v, results[k] = v;
    write_file_atomic(out / "predict_results.json", predict.dump(2) + "\n");
  }
  write_file_atomic(out / "all_results.json", results.dump(2) + "\n");
  if (c.output.plot_loss) {
    for (const char* key : {"loss", "eval_loss", "reward", "eval_reward", "kl", "aux_loss"}) {
      std::vector<double> steps, values;
      for (const auto& l : log.history())
        if (l.contains(key)) steps.push_back(l["current_steps"].get<double>()), values.push_back(l[key].get<double>());
      std::string name = key;
      if (metrics::write_plot_svg(out / ("training_" + name + ".svg"), "training " + name + " of " + out.string(), steps, values) &&
          metrics::write_plot_png(out / ("training_" + name + ".png"), steps, values))
        spdlog::info("wrote {} (and .png)", (out / ("training_" + name + ".svg")).string());
    }
  }
  // Last: it marks the run finished (a rerun does not train again), so a write that failed before
  // it (a full disk) leaves a run that the same command completes.
  auto final_state = trainer_state_json(c, state, log, total_steps);
  // early stopping finishes a run too, and so does a prediction run
  final_state["gym_finished"] = state.global_step >= total_steps || state.stopped_early || !c.eval.do_train;
  write_file_atomic(out / "trainer_state.json", final_state.dump(2) + "\n");
}

// ---- evaluation (recipes/evaluation.h): shared by the SFT and RL loops like the rest of this file
namespace {
double round_to(double v, double scale) { return std::round(v * scale) / scale; }

// HF's speed_metrics: runtime rounded to 4 decimals, rates to 3.
void add_speed(std::map<std::string, double>& m, double runtime, int64_t samples, int64_t steps) {
  m["eval_runtime"] = round_to(runtime, 1e4);
  m["eval_samples_per_second"] = runtime > 0 ? round_to(static_cast<double>(samples) / runtime, 1e3) : 0.0;
  m["eval_steps_per_second"] = runtime > 0 ? round_to(static_cast<double>(steps) / runtime, 1e3) : 0.0;
}

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
    auto batch = data::collate(picked, tm.tokenizer.pad_id(), tm.device);
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
    auto ids = torch::tensor(p.prompt_ids, torch::kInt64).to(tm.device).unsqueeze(0);   // [1, P]
    auto out = model::generate(*tm.model, ids, torch::ones({1, len}, ids.options()), greedy);
    const int64_t c = out.completion_mask[0].sum().item<int64_t>();
    const auto completion = out.completion_ids[0].cpu();   // decoded on the host
    std::vector<int64_t> cids(completion.data_ptr<int64_t>(), completion.data_ptr<int64_t>() + c);
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
  // The top-level entry of output_dir it lies in, recorded when gym creates it, so that
  // overwrite_output_dir removes it; a folder that was there before is the user's and stays.
  const auto rel = fs::absolute(dir).lexically_normal().lexically_relative(fs::absolute(out).lexically_normal());
  std::error_code ec;
  if (!rel.empty() && *rel.begin() != ".." && *rel.begin() != "." && !fs::exists(out / *rel.begin(), ec))
    checkpoint::record_outputs(out, {rel.begin()->string()});
  log.enable_tensorboard(dir);
  spdlog::info("TensorBoard: {}", log.tensorboard()->path().string());
}

}  // namespace gym::recipes
