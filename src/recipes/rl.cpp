// stage: grpo | gspo — online RL with group sampling, readable top to bottom.
//   every generation round: prompts × num_generations completions (KV cache, one batch)
//   → rewards → group advantages → old / reference log-probs → steps_per_generation ×
//   num_iterations micro-batches through the PolicyLoss → optimizer steps every accumulation.
#include <spdlog/spdlog.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <cmath>

#include "gym/checkpoint/output_dir.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"
#include "gym/data/dataset.h"
#include "gym/data/sampler.h"
#include "gym/lora/adapter.h"
#include "gym/metrics/trainer_log.h"
#include "gym/model/generate.h"
#include "gym/model/score.h"
#include "gym/ops/ops.h"
#include "gym/recipes/model_setup.h"
#include "gym/recipes/optimization.h"
#include "gym/recipes/run_state.h"
#include "gym/recipes/train.h"
#include "gym/rl/losses.h"
#include "gym/rl/rewards.h"
#include "recipes/dist_run.h"
#include "recipes/evaluation.h"
#include "recipes/step_end.h"
#include "recipes/losses.h"
#include "recipes/moe_monitor.h"
#include "recipes/rollouts.h"
#include "recipes/stop_signal.h"

namespace gym::recipes {

namespace {

// One generation round, kept for the optimisation passes over it.
struct Rollouts {
  torch::Tensor input_ids;        // [N, P + C] left-padded prompt | completion
  torch::Tensor attention_mask;   // [N, P + C]
  torch::Tensor completion_ids;   // [N, C]
  torch::Tensor completion_mask;  // [N, C] (truncated completions zeroed with mask_truncated_completions)
  torch::Tensor advantages;       // [N]
  torch::Tensor old_logp, ref_logp;   // [N, C] or undefined
  int64_t prompt_len = 0;
  // Each micro-batch's rows [first, first + rows) and its own longest prompt p and completion c
  // (micro_batch below says why), measured once per round.
  struct Extent {
    int64_t first, rows, p, c;
  };
  std::vector<Extent> micro;
  std::map<std::string, double> metrics;
  std::string completions_jsonl;  // this rank's rows of the round for completions.jsonl (log_completions)
};

// log_completions: every rank's rows of the last round, in rank order, appended to completions.jsonl
// by rank 0 (collective). On resume, rows of steps after the checkpoint are dropped first.
void append_completions(const dist::RunContext& ctx, const std::filesystem::path& path, const std::string& rows) {
  const std::string all = dist::concat_in_rank_order(*ctx.comm, rows);
  if (!ctx.is_main()) return;
  std::ofstream out(path, std::ios::app | std::ios::binary);
  out << all;
  out.flush();
  if (!out) runtime_error("{}: cannot append: {}", path.string(), std::strerror(errno));
}

void drop_completions_after(const std::filesystem::path& path, int64_t step) {
  if (!std::filesystem::exists(path)) return;
  std::istringstream in(read_file(path));
  std::string line, kept;
  while (std::getline(in, line)) {
    const auto j = parse_json(line, false);
    if (!j.is_discarded() && j.is_object() && j.value("step", int64_t{0}) <= step) kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

// Rows of a round cut to their own extent: the columns left of their longest prompt and right of
// their longest completion are padding for all of them. A micro-batch is then computed in the same
// geometry whichever process holds it and whatever else its round holds, so 1 process with gradient
// accumulation and N processes sum bit-identical gradients (DistRl.GrpoAndGspoOnTwoProcessesEqualOne),
// and no padding column is computed.
struct MicroBatch {
  torch::Tensor input_ids, attention_mask;     // [n, p + c]
  torch::Tensor completion_ids, completion_mask;   // [n, c]
  torch::Tensor old_logp, ref_logp, advantages;    // [n, c] (or undefined), [n]
  int64_t prompt_len = 0;                          // p
};

// The extents of the round's micro-batches of `micro` rows (prompts left-padded, completions right-padded).
std::vector<Rollouts::Extent> micro_extents(const Rollouts& r, int64_t micro) {
  const int64_t rows = r.input_ids.size(0), p_all = r.prompt_len, c_all = r.completion_ids.size(1);
  const auto real = r.attention_mask.to(torch::kCPU);
  const auto prompt_len = real.narrow(1, 0, p_all).sum(1), completion_len = real.narrow(1, p_all, c_all).sum(1);   // [N]
  std::vector<Rollouts::Extent> out;
  for (int64_t first = 0; first < rows; first += micro) {
    const int64_t n = std::min(micro, rows - first);
    out.push_back({first, n, std::max<int64_t>(1, prompt_len.narrow(0, first, n).max().item<int64_t>()),
                   std::max<int64_t>(1, completion_len.narrow(0, first, n).max().item<int64_t>())});
  }
  return out;
}

// Micro-batch i of the round: views of its rows and columns.
MicroBatch micro_batch(const Rollouts& r, size_t i) {
  const auto& e = r.micro.at(i);
  const int64_t p_all = r.prompt_len;
  MicroBatch mb;
  mb.prompt_len = e.p;
  mb.input_ids = r.input_ids.narrow(0, e.first, e.rows).narrow(1, p_all - e.p, e.p + e.c);
  mb.attention_mask = r.attention_mask.narrow(0, e.first, e.rows).narrow(1, p_all - e.p, e.p + e.c);
  mb.completion_ids = r.completion_ids.narrow(0, e.first, e.rows).narrow(1, 0, e.c);
  mb.completion_mask = r.completion_mask.narrow(0, e.first, e.rows).narrow(1, 0, e.c);
  if (r.old_logp.defined()) mb.old_logp = r.old_logp.narrow(0, e.first, e.rows).narrow(1, 0, e.c);
  if (r.ref_logp.defined()) mb.ref_logp = r.ref_logp.narrow(0, e.first, e.rows).narrow(1, 0, e.c);
  if (r.advantages.defined()) mb.advantages = r.advantages.narrow(0, e.first, e.rows);
  return mb;
}

// Per-token log-probs of the completion under the sampling temperature: [n, c].
torch::Tensor completion_logprobs(model::CausalLMImpl& m, const MicroBatch& mb, double temperature, bool checkpointing,
                                  torch::Tensor* entropy = nullptr, torch::Tensor* aux_loss = nullptr,
                                  std::map<std::string, double>* expert_stats = nullptr, dist::Communicator* global_balance = nullptr) {
  model::ForwardOptions fo;
  fo.output_router_logits = aux_loss && m.config().is_moe();
  fo.attention_mask = mb.attention_mask;
  fo.gradient_checkpointing = checkpointing;
  auto forward = m.hidden_states(mb.input_ids, fo);
  const auto& hidden = forward.hidden;
  const auto& router = forward.router_logits;
  const int64_t c = mb.completion_ids.size(1);
  auto logits = m.lm_logits(hidden.narrow(1, mb.prompt_len - 1, c)).to(torch::kFloat32);   // [n, c, V]
  if (entropy) *entropy = rl::entropy_from_logits(logits.detach(), temperature);
  if (!router.empty()) {
    *aux_loss = global_balance ? global_load_balancing_share(router, m.config().num_experts, m.config().num_experts_per_tok,
                                                             fo.attention_mask, *global_balance)
                               : model::load_balancing_loss(router, m.config().num_experts, m.config().num_experts_per_tok, fo.attention_mask);
    if (expert_stats) *expert_stats = model::expert_statistics(router, m.config().num_experts, m.config().num_experts_per_tok, fo.attention_mask);
  }
  return rl::selective_log_softmax(logits, mb.completion_ids, temperature);
}

// Log-probs of every row of the round, micro-batch by micro-batch (each in its own geometry, as
// training computes it): [N, C], zero right of each micro-batch's longest completion.
torch::Tensor round_logprobs(model::CausalLMImpl& m, const Rollouts& r, double temperature) {
  auto out = torch::zeros(r.completion_ids.sizes(), r.completion_ids.options().dtype(torch::kFloat32));
  for (size_t i = 0; i < r.micro.size(); ++i) {
    const auto lp = completion_logprobs(m, micro_batch(r, i), temperature, false);
    out.narrow(0, r.micro[i].first, lp.size(0)).narrow(1, 0, lp.size(1)).copy_(lp);
  }
  return out;
}

// Sampling keyed by (seed, round, position of the prompt in the round, prompt index): a prompt's
// group gets the same completions whichever rank generates it.
uint64_t mix64(uint64_t x) {   // splitmix64's finaliser
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// The accuracy reward compares with each row's reference answer: rows without one would train on
// nothing (every completion unscored), so none at all is an error naming the data and the way out.
void check_reference_answers(const std::vector<std::string>& reward_funcs, const std::vector<data::RlPrompt>& prompts,
                             const config::DataArgs& data) {
  if (std::find(reward_funcs.begin(), reward_funcs.end(), "accuracy") == reward_funcs.end() || prompts.empty()) return;
  size_t missing = 0;
  for (const auto& p : prompts) missing += !rl::reference_answer(p.extra).has_value();
  if (missing == 0) return;
  std::vector<std::string> columns;
  if (prompts.front().extra.is_object())
    for (auto it = prompts.front().extra.begin(); it != prompts.front().extra.end(); ++it) columns.push_back(it.key());
  const std::string names = fmt::format("{}", fmt::join(data.dataset, ", "));
  if (missing == prompts.size())
    config_error("dataset {}: reward 'accuracy' needs a reference answer, but no row has an answer, solution or ground_truth column "
                 "(besides the prompt, the rows have: {}); rename the column, or map it in {}/dataset_info.json with "
                 "\"columns\": {{\"answer\": \"<column>\", ...}}",
                 names, columns.empty() ? "nothing" : fmt::format("{}", fmt::join(columns, ", ")), data.dataset_dir);
  spdlog::warn("dataset {}: {} of {} rows have no reference answer; reward 'accuracy' leaves their completions unscored", names,
               missing, prompts.size());
}

}  // namespace

void run_rl(const config::ResolvedConfig& rc, const dist::RunContext& ctx) {
  const auto& c = rc.config;
  const auto& rl = c.rl;
  // Data parallel: every rank draws the same prompts of a round and generates whole groups of its
  // contiguous share; rewards are gathered so advantages and metrics are those of the global batch.
  const int64_t rank = ctx.rank(), world = ctx.world();
  const auto resume_from = prepare_output_dir_on_main(rc, ctx);
  torch::manual_seed(static_cast<uint64_t>(c.training.seed));
  if (rl.beta > 0 && c.lora.finetuning_type != "lora")
    config_error("beta > 0 needs finetuning_type lora: the reference policy is the base with the adapters switched off");

  // ---- model and prompts
  TrainModel tm = setup_model_in_turn(c, ctx);
  auto splits = data::load_datasets(c.data, /*prompt_only=*/true);
  data::RenderOptions ro{c.model.template_name, c.model.enable_thinking, c.data.cutoff_len, false, false, c.data.default_system};
  std::vector<data::RlPrompt> prompts;
  for (const auto& conv : splits.train) prompts.push_back(data::encode_rl_prompt(conv, tm.tokenizer, ro, rl.max_prompt_length));
  check_reference_answers(rl.reward_funcs, prompts, c.data);
  std::vector<data::RlPrompt> eval_prompts;   // held-out prompts (val_size or eval_dataset)
  for (const auto& conv : splits.eval) eval_prompts.push_back(data::encode_rl_prompt(conv, tm.tokenizer, ro, rl.max_prompt_length));
  if (c.eval.any() && eval_prompts.empty()) config_error("the eval split is empty (val_size / eval_dataset)");
  const auto completions_path = std::filesystem::path(c.output.output_dir) / "completions.jsonl";
  data::BatchSampler sampler(static_cast<int64_t>(prompts.size()), static_cast<uint64_t>(c.training.seed));

  // ---- batch geometry (TRL): completions per round = generation_batch_size
  const int64_t g = rl.num_generations, micro = c.training.per_device_train_batch_size;
  const int64_t accum = c.training.gradient_accumulation_steps, spg = rl.steps_per_generation;
  const int64_t per_round = rl.generation_batch_size, prompts_per_round = per_round / g;
  if (per_round != micro * world * spg)
    config_error("generation_batch_size {} must equal per_device_train_batch_size {} × world size {} × steps_per_generation {}",
                 per_round, micro, world, spg);
  const int64_t local_round = micro * spg, local_prompts = local_round / g;   // this rank's completions and prompts
  if (local_round % g != 0)
    config_error("each prompt's group is generated on one process: per_device_train_batch_size {} × steps_per_generation {} = {} "
                 "must be divisible by num_generations {} (with {} processes)",
                 micro, spg, local_round, g, world);
  const int64_t micro_per_round = spg * rl.num_iterations;
  const bool off_policy = micro_per_round > accum;
  const int64_t total_steps = c.training.max_steps > 0
                                  ? c.training.max_steps
                                  : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(c.training.num_train_epochs * prompts.size() * g *
                                                                                        rl.num_iterations / static_cast<double>(micro * world * accum))));
  Optimization opt(lora::trainable_parameters(*tm.model), c.training, total_steps);
  opt.distribute(ctx.comm, c.dist.zero_stage);   // gradients over ranks: one flat bucket, or ZeRO 1/2 shards
  RunState state;
  if (!resume_from.empty()) {
    state = load_checkpoint(resume_from, tm, opt, rank, world);
    sampler.restore(state.data_state, (resume_from / "trainer_state.json").string());
  }
  if (rl.log_completions && ctx.is_main()) {
    checkpoint::record_outputs(c.output.output_dir, {completions_path.filename().string()});
    drop_completions_after(completions_path, state.global_step);   // a resumed run rewrites the steps after its checkpoint
  }
  std::optional<metrics::TrainerLog> log;   // rank 0 alone writes to output_dir
  if (ctx.is_main()) log.emplace(c.output.output_dir, total_steps, resume_from.empty(), state.global_step);
  if (log) attach_tensorboard(c, *log);
  auto policy = rl::make_policy_loss(rl.importance_sampling_level);
  rl::PolicyLossConfig pc;
  pc.loss_type = rl.loss_type;
  pc.epsilon_low = rl.epsilon;
  pc.epsilon_high = rl.epsilon_high;
  pc.delta = rl.delta;
  pc.beta = rl.beta;
  pc.max_completion_length = rl.max_completion_length;
  pc.grad_accum = accum;
  rl::RewardSettings rs;
  rs.length_target = rl.length_target;
  rs.external_command = rl.reward_command;
  rs.external_timeout = rl.reward_timeout;
  rs.external_sandbox = rl.reward_sandbox;
  rs.external_memory_mb = rl.reward_memory_mb;
  rs.external_max_processes = rl.reward_max_processes;
  rs.external_max_output_mb = rl.reward_max_output_mb;
  model::SamplingConfig sc;
  sc.max_new_tokens = rl.max_completion_length;
  sc.do_sample = true;
  sc.temperature = rl.temperature;
  sc.top_p = rl.top_p;
  sc.top_k = rl.top_k;
  sc.repetition_penalty = rl.repetition_penalty;
  sc.stop_ids = tm.tokenizer.stop_ids();
  sc.pad_id = tm.tokenizer.pad_id();
  model::SamplingConfig greedy = sc;   // evaluation: greedy decoding, no random numbers
  greedy.do_sample = false;
  greedy.repetition_penalty = 1.0;
  auto evaluate = [&] { return evaluate_rl(tm, eval_prompts, greedy, rl, rs, ctx); };
  StepEnd step_end(c, ctx, total_steps, log, state, evaluate, [&] { save_checkpoint_all_ranks(ctx, rc, tm, opt, state, log, total_steps); });
  spdlog::info("{}: {} prompts, {} steps; per round {} prompts × {} generations, {} micro-batches of {} ({}), loss {} / {}",
               c.training.stage, prompts.size(), total_steps, prompts_per_round, g, micro_per_round, micro,
               off_policy ? "off-policy: old log-probs stored" : "on-policy", policy->name(), rl.loss_type);

  install_stop_handlers();
  const bool global_balance = world > 1 && c.training.router_aux_loss_scope == "global";
  ExpertCollapseMonitor collapse;
  const auto start = std::chrono::steady_clock::now();
  Rollouts r;
  int64_t micro_index = micro_per_round;   // forces a first round
  int64_t samples_seen = 0;
  std::map<std::string, double> step_metrics;
  std::map<std::string, std::pair<double, int64_t>> window;   // metric → (sum, steps) since the last log
  double step_loss = 0;
  int64_t micro_in_step = 0, step_tokens = 0, window_tokens = 0;
  auto window_start = std::chrono::steady_clock::now();
  step_end.before_training();
  double epoch_before = sampler.epoch();
  while (state.global_step < total_steps) {
    // ---- a new generation round
    if (micro_index >= micro_per_round) {
      micro_index = 0;
      auto gen_start = std::chrono::steady_clock::now();
      const std::vector<int64_t> chosen = sampler.next(prompts_per_round);   // the round's prompts, equal on every rank
      std::vector<const data::RlPrompt*> mine;
      std::vector<uint64_t> keys;
      // The round's number (micro-batches so far / per round): the same for 1 process accumulating N
      // micro-batches and N processes of one each. A run resumed mid-round starts a round off that
      // grid: its key is kept apart from the round numbers.
      const auto micros = static_cast<uint64_t>(state.global_step * accum + micro_in_step);
      const uint64_t round_key = micros % static_cast<uint64_t>(micro_per_round) == 0 ? micros / static_cast<uint64_t>(micro_per_round)
                                                                                      : micros | (uint64_t{1} << 63);
      for (int64_t j = rank * local_prompts; j < (rank + 1) * local_prompts; ++j) {
        const auto index = static_cast<uint64_t>(chosen[static_cast<size_t>(j)]);
        mine.push_back(&prompts[index]);
        keys.push_back(mix64(mix64(mix64(static_cast<uint64_t>(c.training.seed)) ^ round_key) ^ static_cast<uint64_t>(j)) ^ mix64(index));
      }
      tm.model->eval();
      auto out = generate_groups(*tm.model, mine, keys, g, sc, tm.device);
      tm.model->train();
      auto pids = out.prompt_ids, pmask = out.prompt_mask;
      const int64_t p_len = pids.size(1);
      r.prompt_len = p_len;
      r.completion_ids = out.completion_ids;
      r.completion_mask = out.completion_mask;
      r.input_ids = torch::cat({pids, out.completion_ids.clamp(0, tm.model->config().vocab_size - 1)}, 1);
      r.attention_mask = torch::cat({pmask, out.completion_mask}, 1);
      r.micro = micro_extents(r, micro);
      // rewards of every function on the decoded completions
      std::vector<rl::RewardInput> inputs;
      const auto completion_cpu = out.completion_ids.cpu(), completion_mask_cpu = out.completion_mask.cpu();   // decoded on the host
      for (int64_t k = 0; k < local_round; ++k) {
        const auto& p = *mine[static_cast<size_t>(k / g)];
        const int64_t n = completion_mask_cpu[k].sum().item<int64_t>();
        std::vector<int64_t> ids(completion_cpu[k].data_ptr<int64_t>(), completion_cpu[k].data_ptr<int64_t>() + n);
        inputs.push_back({p.prompt_text, tm.tokenizer.decode(ids, true), ids, p.extra});
      }
      auto rewards = torch::empty({local_round, static_cast<int64_t>(rl.reward_funcs.size())}, torch::kFloat64);
      for (size_t f = 0; f < rl.reward_funcs.size(); ++f) {
        auto v = rl::score_rewards(rl.reward_funcs[f], inputs, rs);
        rewards.select(1, static_cast<int64_t>(f)).copy_(torch::tensor(v, torch::kFloat64));
      }
      // advantages and reward metrics over the global batch (rank order = the round's prompt order)
      auto adv = rl::group_advantages(ctx.comm->all_gather(rewards), rl.reward_weights, g, rl.scale_rewards);
      r.advantages = adv.advantages.narrow(0, rank * local_round, local_round).to(tm.device, torch::kFloat32);
      r.completions_jsonl.clear();
      if (rl.log_completions)
        for (int64_t k = 0; k < local_round; ++k) {
          nlohmann::json row = {{"prompt", inputs[static_cast<size_t>(k)].prompt}, {"completion", inputs[static_cast<size_t>(k)].completion},
                                {"advantage", r.advantages[k].item<double>()}};
          for (size_t f = 0; f < rl.reward_funcs.size(); ++f) {
            const double v = rewards[k][static_cast<int64_t>(f)].item<double>();
            row["rewards"][rl.reward_funcs[f]] = std::isnan(v) ? nlohmann::json() : nlohmann::json(v);
          }
          r.completions_jsonl += row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        }
      r.metrics.clear();
      for (const auto& [k, v] : adv.metrics) {
        std::string key = k;
        if (k.rfind("rewards/", 0) == 0) {   // rewards/<index>/... → rewards/<name>/...
          const auto idx = std::stoul(k.substr(8, k.find('/', 8) - 8));
          key = "rewards/" + rl.reward_funcs[idx] + k.substr(k.find('/', 8));
        }
        r.metrics[key] = v;
      }
      auto lengths = ctx.comm->all_gather(out.completion_mask.sum(1).to(torch::kFloat64));   // [per_round]
      r.metrics["completions/mean_length"] = lengths.mean().item<double>();
      r.metrics["completions/clipped_ratio"] = ctx.comm->all_gather(out.truncated.to(torch::kFloat64)).mean().item<double>();
      if (rl.mask_truncated_completions)
        r.completion_mask = r.completion_mask * (~out.truncated).to(torch::kInt64).unsqueeze(1);
      pc.num_items_in_batch = std::max(1.0, dist::all_reduce_scalar(*ctx.comm, r.completion_mask.sum().item<double>()));
      // old and reference log-probs, without gradients
      {
        torch::NoGradGuard ng;
        r.old_logp = off_policy ? round_logprobs(*tm.model, r, rl.temperature) : torch::Tensor();
        if (rl.beta > 0) {
          lora::AdaptersDisabled base(*tm.model);
          r.ref_logp = round_logprobs(*tm.model, r, rl.temperature);
        }
      }
      r.metrics["timing/generation_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - gen_start).count();
      state.data_state = sampler.state();
    }

    // ---- one micro-batch through the policy loss
    const auto mb = micro_batch(r, static_cast<size_t>(micro_index % spg));
    torch::Tensor entropy, aux;
    std::map<std::string, double> moe_stats;
    auto logp = completion_logprobs(*tm.model, mb, rl.temperature, c.training.gradient_checkpointing, &entropy, &aux, &moe_stats,
                                    global_balance ? ctx.comm.get() : nullptr);
    for (const auto& [k, v] : moe_stats) step_metrics[k] += v / static_cast<double>(accum);
    auto mask = mb.completion_mask.to(torch::kFloat32);
    rl::PolicyLossInput in{logp, mb.old_logp, mb.ref_logp, mb.advantages, mask};
    // dapo normalises by the tokens of the whole round; TRL's micro-batches each see that count.
    auto pl = policy->compute(in, pc);
    if (rl.loss_type == "dapo") pl.loss = pl.loss * static_cast<double>(micro) / static_cast<double>(micro * accum);
    else pl.loss = pl.loss / static_cast<double>(world);   // per-rank means: the summed gradient is their mean (as DDP)
    if (aux.defined()) {   // MoE: router load balancing, as transformers adds it to the loss
      // per rank: the summed gradient is the mean over ranks; global: the ranks' shares sum to the global loss
      pl.loss = pl.loss + c.training.router_aux_loss_coef.value_or(tm.model->config().router_aux_loss_coef) * aux / static_cast<double>(accum * (global_balance ? 1 : world));
      step_metrics["aux_loss"] += aux.item<double>() / static_cast<double>(accum) * static_cast<double>(global_balance ? world : 1);
    }
    pl.loss.backward();
    step_loss += pl.loss.item<double>();
    for (const auto& [k, v] : pl.metrics) step_metrics[k] += v / static_cast<double>(accum);
    step_metrics["entropy"] += ((entropy.to(torch::kFloat64) * mask.to(torch::kFloat64)).sum() / mask.sum().clamp_min(1)).item<double>() /
                               static_cast<double>(accum);
    step_tokens += mb.attention_mask.sum().item<int64_t>();
    samples_seen += micro * world;
    ++micro_index;
    if (++micro_in_step < accum) continue;

    // ---- the optimizer step (loss, tokens and metrics over all ranks here; gradients in opt.step)
    if (world > 1) {
      std::vector<double> sums{step_loss, static_cast<double>(step_tokens)};
      for (const auto& [k, v] : step_metrics) sums.push_back(v / static_cast<double>(world));
      sums = dist::all_reduce_values(*ctx.comm, sums);
      step_loss = sums[0], step_tokens = static_cast<int64_t>(sums[1]);
      size_t k = 2;
      for (auto& [name, v] : step_metrics) v = sums[k++];
    }
    state.tokens_seen += step_tokens;
    window_tokens += step_tokens;
    step_tokens = 0;
    const auto outcome = opt.step(state.global_step, step_loss);
    ++state.global_step;
    state.epoch = sampler.epoch();
    std::map<std::string, double> metrics = step_metrics;
    if (tm.model->config().is_moe()) collapse.update(step_metrics, state.global_step);
    for (const auto& [k, v] : r.metrics) metrics[k] = v;
    metrics["loss"] = step_loss;
    metrics["lr"] = outcome.lr;
    metrics["grad_norm"] = outcome.grad_norm;
    step_metrics.clear();
    step_loss = 0;
    micro_in_step = 0;
    // As TRL and the HF Trainer log them: each metric is the mean over the steps since the last log,
    // except lr and grad_norm (the current step's).
    for (const auto& [k, v] : metrics) {
      auto& w = window[k];
      w.first = (k == "lr" || k == "grad_norm") ? v : w.first + v;
      w.second = (k == "lr" || k == "grad_norm") ? 1 : w.second + 1;
    }
    std::optional<std::map<std::string, double>> logged_metrics;
    if (step_end.log_due()) {
      std::map<std::string, double> logged;
      for (const auto& [k, w] : window) logged[k] = w.first / static_cast<double>(w.second);
      window.clear();
      // prompt + completion tokens of every rank trained on since the last log, per second (as SFT logs it)
      const auto now = std::chrono::steady_clock::now();
      const double secs = std::chrono::duration<double>(now - window_start).count();
      logged["tokens_per_second"] = secs > 0 ? static_cast<double>(window_tokens) / secs : 0.0;
      window_tokens = 0, window_start = now;
      if (rl.log_completions) {   // the step goes first in each row
        std::string rows;
        std::istringstream lines(r.completions_jsonl);
        for (std::string line; std::getline(lines, line);)
          rows += "{\"step\": " + std::to_string(state.global_step) + ", " + line.substr(1) + "\n";
        append_completions(ctx, completions_path, rows);
      }
      logged_metrics = std::move(logged);
    }
    const bool stop = step_end.after_step(logged_metrics ? &*logged_metrics : nullptr, epoch_before);
    epoch_before = state.epoch;
    if (stop) break;
  }
  const double runtime = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  step_end.after_training(tm);
  finish_run_all_ranks(ctx, rc, tm, state, log, total_steps, runtime, samples_seen);
  spdlog::info("done: {} steps in {:.1f} s, outputs in {}", state.global_step, runtime, c.output.output_dir);
}

}  // namespace gym::recipes
