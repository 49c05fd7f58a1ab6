// stage: sft — supervised fine-tuning, readable top to bottom.
#include <spdlog/spdlog.h>

#include <algorithm>
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
#include "recipes/dist_run.h"
#include "recipes/evaluation.h"
#include "recipes/prediction.h"
#include "recipes/step_end.h"
#include "recipes/losses.h"
#include "recipes/moe_monitor.h"
#include "recipes/stop_signal.h"

namespace gym::recipes {

namespace {
// Labelled next-token pairs of one example: labels[1:] != -100 (as counted on a collated batch).
int64_t label_pairs(const data::SftExample& e) {
  int64_t n = 0;
  for (size_t t = 1; t < e.labels.size(); ++t) n += e.labels[t] != -100;
  return n;
}

// The conversations encoded, keeping those with at least one trained token after cutoff_len.
std::vector<data::SftExample> encode_trained(const std::vector<data::Conversation>& convs, const tokenizer::Tokenizer& tok,
                                             const data::RenderOptions& ro) {
  std::vector<data::SftExample> out;
  for (const auto& conv : convs) {
    auto ex = data::encode_sft(conv, tok, ro);
    if (std::any_of(ex.labels.begin(), ex.labels.end(), [](int64_t l) { return l != -100; })) out.push_back(std::move(ex));
  }
  return out;
}
}  // namespace

void run_sft(const config::ResolvedConfig& rc, const dist::RunContext& ctx) {
  const auto& c = rc.config;
  // Data parallel: every rank draws the same global batch of batch × world examples per
  // micro-step and trains on its own contiguous share; gradients are summed over ranks.
  const int64_t rank = ctx.rank(), world = ctx.world();
  const auto resume_from = prepare_output_dir_on_main(rc, ctx);
  torch::manual_seed(static_cast<uint64_t>(c.training.seed));

  // ---- model, tokenizer, data
  TrainModel tm = setup_model_in_turn(c, ctx);
  auto splits = data::load_datasets(c.data, /*prompt_only=*/false);
  data::RenderOptions ro{c.model.template_name, c.model.enable_thinking, c.data.cutoff_len, c.data.train_on_prompt,
                         c.data.mask_history, c.data.default_system};
  std::vector<data::SftExample> examples = encode_trained(splits.train, tm.tokenizer, ro);
  if (c.data.packing) examples = data::pack_examples(examples, c.data.cutoff_len);
  if (examples.empty()) config_error("no SFT example has a trained token after cutoff_len {}", c.data.cutoff_len);
  if (ctx.is_main()) spdlog::info("training example:\n{}", data::preview_example(examples.front(), tm.tokenizer));
  // The eval split (val_size rows carved after the seeded shuffle, or eval_dataset): never packed.
  const auto eval_examples = encode_trained(splits.eval, tm.tokenizer, ro);
  // do_predict: the eval split again, trained labels on the last assistant turn only (its prompt ends before them)
  std::vector<data::SftExample> predict_examples;
  if (c.eval.do_predict) {
    data::RenderOptions po = ro;
    po.train_on_prompt = false;
    po.mask_history = true;
    predict_examples = encode_trained(splits.eval, tm.tokenizer, po);
    if (predict_examples.empty())
      config_error("do_predict: the eval split has no example with an answer after cutoff_len {} (eval_dataset / val_size)", c.data.cutoff_len);
  }
  if (c.eval.any() && eval_examples.empty())
    config_error("the eval split has no example with a trained token after cutoff_len {} (val_size / eval_dataset)", c.data.cutoff_len);
  data::BatchSampler sampler(static_cast<int64_t>(examples.size()), static_cast<uint64_t>(c.training.seed));

  // ---- schedule
  const int64_t batch = c.training.per_device_train_batch_size, accum = c.training.gradient_accumulation_steps;
  const int64_t batches_per_epoch = (sampler.examples_per_epoch() + batch * world - 1) / (batch * world);
  const int64_t total_steps = c.training.max_steps > 0
                                  ? c.training.max_steps
                                  : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(c.training.num_train_epochs * batches_per_epoch / accum)));
  Optimization opt(lora::trainable_parameters(*tm.model), c.training, total_steps);
  opt.distribute(ctx.comm, c.dist.zero_stage);   // gradients over ranks: one flat bucket, or ZeRO 1/2 shards
  RunState state;
  if (!resume_from.empty()) {
    state = load_checkpoint(resume_from, tm, opt, rank, world);
    sampler.restore(state.data_state, (resume_from / "trainer_state.json").string());
  }
  std::optional<metrics::TrainerLog> log;   // rank 0 alone writes to output_dir
  if (ctx.is_main()) log.emplace(c.output.output_dir, total_steps, resume_from.empty(), state.global_step);
  if (log) attach_tensorboard(c, *log);
  auto evaluate = [&] { return evaluate_sft(tm, eval_examples, c.eval.per_device_batch_size, ctx); };
  StepEnd step_end(c, ctx, total_steps, log, state, evaluate, [&] { save_checkpoint_all_ranks(ctx, rc, tm, opt, state, log, total_steps); });
  if (!c.eval.do_train) spdlog::info("prediction run (do_train: false): {} eval examples, output {}", predict_examples.size(), c.output.output_dir);
  else spdlog::info("SFT: {} examples, {} steps (batch {} × {} processes × accumulation {}), warm-up {}, output {}", examples.size(),
               total_steps, batch, world, accum, opt.warmup_steps(), c.output.output_dir);
  install_stop_handlers();
  const bool global_balance = world > 1 && c.training.router_aux_loss_scope == "global";
  ExpertCollapseMonitor collapse;
  const auto start = std::chrono::steady_clock::now();
  double loss_window = 0, aux_window = 0;
  int64_t window_steps = 0, tokens_window = 0, samples_seen = 0;
  auto window_start = start;
  step_end.before_training();
  while (c.eval.do_train && state.global_step < total_steps) {
    const double epoch_before = sampler.epoch();
    // ---- one optimizer step over `accum` micro-batches; the loss is the token mean of the step
    std::vector<data::Batch> micro;
    int64_t label_tokens = 0, global_tokens = 0;
    for (int64_t m = 0; m < accum; ++m) {
      std::vector<const data::SftExample*> picked;
      const auto global = sampler.next(batch * world);   // the same on every rank
      for (int64_t j = 0; j < batch; ++j) picked.push_back(&examples[static_cast<size_t>(global[static_cast<size_t>(rank * batch + j)])]);
      micro.push_back(data::collate(picked, tm.tokenizer.pad_id(), tm.device));
      for (auto i : global) {   // counted over all ranks' examples
        label_tokens += label_pairs(examples[static_cast<size_t>(i)]);
        global_tokens += static_cast<int64_t>(examples[static_cast<size_t>(i)].input_ids.size());
      }
    }
    double step_loss = 0, step_aux = 0;
    std::map<std::string, double> step_moe;
    for (auto& b : micro) {
      auto out = causal_lm_loss(*tm.model, b.input_ids, b.attention_mask, b.labels, label_tokens, c.training.gradient_checkpointing,
                                global_balance ? ctx.comm.get() : nullptr);
      torch::Tensor loss = out.loss;
      if (out.aux_loss.defined()) {
        // per rank (transformers' default): the gradient is the mean over ranks of each rank's loss;
        // global: each rank holds its share of the global batch's loss, so the sum is that loss
        loss = loss + c.training.router_aux_loss_coef.value_or(tm.model->config().router_aux_loss_coef) * out.aux_loss / static_cast<double>(accum * (global_balance ? 1 : world));
        step_aux += out.aux_loss.item<double>() / static_cast<double>(accum);
      }
      loss.backward();
      for (const auto& [k, v] : out.expert_stats) step_moe[k] += v / static_cast<double>(accum);
      step_loss += out.loss.item<double>();
    }
    tokens_window += global_tokens;
    state.tokens_seen += global_tokens;
    samples_seen += batch * world * accum;
    if (world > 1) {   // the step's sums over ranks (identical on every rank); opt.step reduces the gradients
      std::vector<double> sums{step_loss, step_aux / static_cast<double>(global_balance ? 1 : world)};   // Σ of shares / mean
      for (const auto& [k, v] : step_moe) sums.push_back(v / static_cast<double>(world));
      sums = dist::all_reduce_values(*ctx.comm, sums);
      step_loss = sums[0], step_aux = sums[1];
      size_t k = 2;
      for (auto& [name, v] : step_moe) v = sums[k++];
    }
    const auto outcome = opt.step(state.global_step, step_loss);
    ++state.global_step;
    state.epoch = sampler.epoch();
    state.data_state = sampler.state();
    if (outcome.applied) loss_window += step_loss, aux_window += step_aux, ++window_steps;

    // ---- logging, evaluation, checkpoints, early stopping, stop signals
    std::optional<std::map<std::string, double>> logged;
    if (step_end.log_due()) {
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
      logged = std::move(metrics);
      loss_window = aux_window = 0, window_steps = 0, tokens_window = 0, window_start = now;
    }
    if (step_end.after_step(logged ? &*logged : nullptr, epoch_before)) break;
  }
  const double runtime = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  step_end.after_training(tm);
  if (c.eval.do_predict) {
    auto p = predict_sft(tm, predict_examples, c.training.max_new_tokens, ctx);
    state.predictions_jsonl = std::move(p.jsonl), state.predict_metrics = std::move(p.metrics);
    spdlog::info("do_predict: {} predictions, generated_predictions.jsonl in {}", predict_examples.size(), c.output.output_dir);
  }
  finish_run_all_ranks(ctx, rc, tm, state, log, total_steps, runtime, samples_seen);
  spdlog::info("done: {} steps in {:.1f} s, outputs in {}", state.global_step, runtime, c.output.output_dir);
}

}  // namespace gym::recipes
