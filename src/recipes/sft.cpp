// stage: sft — supervised fine-tuning, readable top to bottom.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>

#include "gym/core/error.h"
#include "gym/data/dataset.h"
#include "gym/data/sampler.h"
#include "gym/metrics/trainer_log.h"
#include "gym/model/score.h"
#include "gym/recipes/model_setup.h"
#include "gym/recipes/optimization.h"
#include "gym/recipes/run_state.h"
#include "gym/recipes/train.h"
#include "gym/lora/adapter.h"
#include "recipes/losses.h"
#include "recipes/moe_monitor.h"
#include "recipes/stop_signal.h"

namespace gym::recipes {

void run_sft(const config::ResolvedConfig& rc) {
  const auto& c = rc.config;
  const auto resume_from = prepare_output_dir(rc);
  torch::manual_seed(static_cast<uint64_t>(c.training.seed));

  // ---- model, tokenizer, data
  TrainModel tm = setup_model(c);
  auto splits = data::load_datasets(c.data, /*prompt_only=*/false);
  data::RenderOptions ro{c.model.template_name, c.model.enable_thinking, c.data.cutoff_len, c.data.train_on_prompt,
                         c.data.mask_history, c.data.default_system};
  std::vector<data::SftExample> examples;
  for (const auto& conv : splits.train) {
    auto ex = data::encode_sft(conv, tm.tokenizer, ro);
    bool trained = false;
    for (auto l : ex.labels) trained |= l != -100;
    if (trained) examples.push_back(std::move(ex));
  }
  if (c.data.packing) examples = data::pack_examples(examples, c.data.cutoff_len);
  if (examples.empty()) config_error("no SFT example has a trained token after cutoff_len {}", c.data.cutoff_len);
  data::BatchSampler sampler(static_cast<int64_t>(examples.size()), static_cast<uint64_t>(c.training.seed));

  // ---- schedule
  const int64_t batch = c.training.per_device_train_batch_size, accum = c.training.gradient_accumulation_steps;
  const int64_t batches_per_epoch = (sampler.examples_per_epoch() + batch - 1) / batch;
  const int64_t total_steps = c.training.max_steps > 0
                                  ? c.training.max_steps
                                  : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(c.training.num_train_epochs * batches_per_epoch / accum)));
  Optimization opt(lora::trainable_parameters(*tm.model), c.training, total_steps);
  RunState state;
  if (!resume_from.empty()) {
    state = load_checkpoint(resume_from, tm, opt);
    sampler.restore(state.data_state);
  }
  metrics::TrainerLog log(c.output.output_dir, total_steps, resume_from.empty(), state.global_step);
  metrics::Progress progress(total_steps);
  const int64_t log_every = c.output.logging_steps < 1
                                ? std::max<int64_t>(1, static_cast<int64_t>(c.output.logging_steps * total_steps))
                                : static_cast<int64_t>(c.output.logging_steps);
  spdlog::info("SFT: {} examples, {} steps (batch {} × accumulation {}), warm-up {}, output {}", examples.size(), total_steps,
               batch, accum, opt.warmup_steps(), c.output.output_dir);
  // Test hook: die by SIGKILL right after this step, to prove checkpoints survive a kill.
  const char* kill_env = std::getenv("GYM_TEST_SIGKILL_AFTER_STEP");
  const int64_t kill_after = kill_env ? std::atoll(kill_env) : -1;

  install_stop_handlers();
  ExpertCollapseMonitor collapse;
  const auto start = std::chrono::steady_clock::now();
  double loss_window = 0, aux_window = 0;
  int64_t window_steps = 0, tokens_window = 0, samples_seen = 0;
  auto window_start = start;
  while (state.global_step < total_steps) {
    // ---- one optimizer step over `accum` micro-batches; the loss is the token mean of the step
    std::vector<data::Batch> micro;
    int64_t label_tokens = 0;
    for (int64_t m = 0; m < accum; ++m) {
      std::vector<const data::SftExample*> picked;
      for (auto i : sampler.next(batch)) picked.push_back(&examples[static_cast<size_t>(i)]);
      micro.push_back(data::collate(picked, tm.tokenizer.pad_id()));
      label_tokens += (micro.back().labels.narrow(1, 1, micro.back().labels.size(1) - 1) != -100).sum().item<int64_t>();
    }
    double step_loss = 0, step_aux = 0;
    std::map<std::string, double> step_moe;
    for (auto& b : micro) {
      auto out = causal_lm_loss(*tm.model, b.input_ids, b.attention_mask, b.labels, label_tokens, c.training.gradient_checkpointing);
      torch::Tensor loss = out.loss;
      if (out.aux_loss.defined()) {
        loss = loss + c.training.router_aux_loss_coef * out.aux_loss / static_cast<double>(accum);
        step_aux += out.aux_loss.item<double>() / static_cast<double>(accum);
      }
      loss.backward();
      for (const auto& [k, v] : out.expert_stats) step_moe[k] += v / static_cast<double>(accum);
      step_loss += out.loss.item<double>();
      tokens_window += b.num_tokens;
      state.tokens_seen += b.num_tokens;
      samples_seen += b.input_ids.size(0);
    }
    const auto outcome = opt.step(state.global_step, step_loss);
    ++state.global_step;
    state.epoch = sampler.epoch();
    state.data_state = sampler.state();
    if (outcome.applied) loss_window += step_loss, aux_window += step_aux, ++window_steps;

    // ---- logging
    if (state.global_step % log_every == 0 || state.global_step == total_steps) {
      const auto now = std::chrono::steady_clock::now();
      const double secs = std::chrono::duration<double>(now - window_start).count();
      std::map<std::string, double> metrics = {{"loss", window_steps ? loss_window / window_steps : NAN},
                                               {"lr", outcome.lr},
                                               {"grad_norm", outcome.grad_norm},
                                               {"tokens_per_second", secs > 0 ? tokens_window / secs : 0.0},
                                               {"total_tokens", static_cast<double>(state.tokens_seen)},
                                               {"skipped_steps", static_cast<double>(opt.skipped_steps())}};
      if (tm.model->config().is_moe()) {
        metrics["aux_loss"] = window_steps ? aux_window / window_steps : NAN;
        for (const auto& [k, v] : step_moe) metrics[k] = v;
        collapse.update(step_moe, state.global_step);
      }
      log.log(state.global_step, state.epoch, metrics);
      const double elapsed = log.elapsed_seconds();
      progress.update(state.global_step, metrics, elapsed,
                      elapsed / std::max<int64_t>(1, state.global_step) * (total_steps - state.global_step));
      loss_window = aux_window = 0, window_steps = 0, tokens_window = 0, window_start = now;
    }
    // ---- checkpoints
    if (state.global_step % c.output.save_steps == 0 && state.global_step < total_steps)
      save_checkpoint(rc, tm, opt, state, log, total_steps);
    if (state.global_step == kill_after) std::raise(SIGKILL);
    // SIGINT / SIGTERM: stop at this step boundary with a checkpoint (unless one was just written).
    if (const int sig = stop_requested(); sig && state.global_step < total_steps) {
      if (state.global_step % c.output.save_steps != 0) save_checkpoint(rc, tm, opt, state, log, total_steps);
      exit_for_stop(sig, c.output.output_dir.c_str(), static_cast<long>(state.global_step));
    }
  }
  progress.finish();
  const double runtime = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  finish_run(rc, tm, state, log, total_steps, runtime, samples_seen);
  spdlog::info("done: {} steps in {:.1f} s, outputs in {}", state.global_step, runtime, c.output.output_dir);
}

}  // namespace gym::recipes
