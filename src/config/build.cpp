// Resolved values → typed structs, derived defaults, and cross-field checks.
#include <cmath>
#include <cstdlib>
#include <set>
#include <regex>

#include "config/values.h"
#include "gym/core/error.h"
#include "gym/dist/env.h"

namespace gym::config {

namespace {

std::string where(const Values& v, const std::string& key) {
  const auto& o = v.get(key).origin;
  if (o.kind == "default") return "default";
  return o.kind == "override" ? "override '" + o.where + "'" : o.where;
}

void one_of(const Values& v, const std::string& key, const std::set<std::string>& allowed) {
  const std::string value = v.get_string(key);
  if (allowed.count(value)) return;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  config_error("{}: key '{}' must be one of {}, got '{}'", where(v, key), key, list, value);
}

void positive(const Values& v, const std::string& key) {
  const double x = v.get_float(key);
  if (!(x > 0) || !std::isfinite(x))   // NaN and infinity included
    config_error("{}: key '{}' must be a positive finite number, got {}", where(v, key), key, v.get(key).value.Scalar());
}

void derive(Values& v, const std::string& key, const std::string& value, const std::string& why) {
  if (!v.is_null(key)) return;
  v.set(key, YAML::Node(value), Origin{"derived", why});
}

bool rl_stage_name(const Values& v) { return v.get_string("stage") != "sft"; }

// The world size comes from the launch environment (dist/env.h, the one reader of it).
int64_t world_size_from_env() { return dist::config_world_size(); }

}  // namespace

TrainConfig build_config(Values& v, std::vector<std::string>& warnings) {
  TrainConfig c;

  // ---- enumerations
  {
    const std::string stage = v.get_string("stage");
    if (stage == "pt" || stage == "rm" || stage == "ppo" || stage == "dpo" || stage == "kto")
      config_error("{}: stage '{}' is a LLaMA-Factory stage gym does not implement; gym trains sft, grpo and gspo", where(v, "stage"), stage);
  }
  one_of(v, "stage", {"sft", "grpo", "gspo"});
  one_of(v, "finetuning_type", {"lora", "full"});
  one_of(v, "template", {"qwen3", "qwen3_nothink", "empty"});
  // The model families (gym/model/family.h); a test keeps this list equal to the registry.
  one_of(v, "create_model_arch", {"qwen3", "qwen3_moe", "qwen3_next", "qwen3_omni_moe"});
  one_of(v, "lr_scheduler_type", {"constant", "constant_with_warmup", "linear", "cosine"});
  one_of(v, "importance_sampling_level", {"token", "sequence", "sequence_token"});
  one_of(v, "loss_type", {"grpo", "bnpo", "dr_grpo", "dapo"});
  one_of(v, "quantization_type", {"nf4", "fp4"});
  one_of(v, "ddp_backend", {"auto", "gloo", "nccl"});
  one_of(v, "router_aux_loss_scope", {"rank", "global"});
  if (v.get_string("quantization_method") != "bnb")
    config_error("{}: quantization_method '{}' is not supported; gym implements bitsandbytes 4-bit (bnb)", where(v, "quantization_method"), v.get_string("quantization_method"));
  {  // TRL maps scale_rewards true/false to group/none.
    std::string s = v.get_string("scale_rewards");
    if (s == "true" || s == "True") v.set("scale_rewards", YAML::Node("group"), v.get("scale_rewards").origin);
    if (s == "false" || s == "False") v.set("scale_rewards", YAML::Node("none"), v.get("scale_rewards").origin);
    one_of(v, "scale_rewards", {"group", "batch", "none"});
  }

  // ---- derived defaults
  derive(v, "lora_alpha", std::to_string(2 * v.get_int("lora_rank")), "2 × lora_rank");
  derive(v, "epsilon_high", v.get(("epsilon")).value.Scalar(), "= epsilon");
  derive(v, "steps_per_generation", std::to_string(v.get_int("gradient_accumulation_steps")), "= gradient_accumulation_steps");
  const int64_t world = world_size_from_env();
  derive(v, "generation_batch_size",
         std::to_string(v.get_int("per_device_train_batch_size") * world * v.get_int("steps_per_generation")),
         "per_device_train_batch_size × world size × steps_per_generation");
  derive(v, "length_target", std::to_string(v.get_int("max_completion_length")), "= max_completion_length");
  derive(v, "top_k", "0", "off");
  if (v.is_null("reward_weights")) {
    YAML::Node w(YAML::NodeType::Sequence);
    for (size_t i = 0; i < v.get_list("reward_funcs").size(); ++i) w.push_back("1");
    v.set("reward_weights", w, Origin{"derived", "1.0 per reward function"});
  }

  // ---- positivity and ranges
  for (const char* k : {"lora_rank", "per_device_train_batch_size", "gradient_accumulation_steps", "cutoff_len",
                        "max_prompt_length", "max_completion_length", "num_iterations", "steps_per_generation",
                        "generation_batch_size", "save_steps", "epsilon", "epsilon_high", "lora_alpha",
                        "logging_steps", "max_nonfinite_steps", "max_new_tokens", "reward_timeout", "reward_memory_mb",
                        "reward_max_processes", "reward_max_output_mb"})
    positive(v, k);
  if (!(v.get_float("learning_rate") >= 0) || !std::isfinite(v.get_float("learning_rate"))) config_error("{}: learning_rate must be >= 0", where(v, "learning_rate"));
  if (!(v.get_float("lora_dropout") >= 0 && v.get_float("lora_dropout") < 1))
    config_error("{}: lora_dropout must be in [0, 1), got {}", where(v, "lora_dropout"), v.get_float("lora_dropout"));
  if (!(v.get_float("warmup_ratio") >= 0 && v.get_float("warmup_ratio") <= 1))
    config_error("{}: warmup_ratio must be in [0, 1], got {}", where(v, "warmup_ratio"), v.get_float("warmup_ratio"));
  if (v.get_float("val_size") < 0) config_error("{}: val_size must be >= 0", where(v, "val_size"));
  if (!(v.get_float("temperature") > 0) || !std::isfinite(v.get_float("temperature"))) config_error("{}: temperature must be positive", where(v, "temperature"));
  if (!(v.get_float("top_p") > 0 && v.get_float("top_p") <= 1)) config_error("{}: top_p must be in (0, 1]", where(v, "top_p"));
  if (v.get_int("top_k") < 0) config_error("{}: top_k must be >= 0", where(v, "top_k"));
  if (v.get_float("repetition_penalty") <= 0) config_error("{}: repetition_penalty must be positive", where(v, "repetition_penalty"));
  if (v.get_float("beta") < 0) config_error("{}: beta must be >= 0", where(v, "beta"));
  if (!v.is_null("delta") && v.get_float("delta") <= 1) config_error("{}: delta must be > 1 (it caps the ratio), got {}", where(v, "delta"), v.get_float("delta"));
  if (!v.is_null("max_samples") && v.get_int("max_samples") <= 0) config_error("{}: max_samples must be positive", where(v, "max_samples"));
  if (!v.is_null("save_total_limit") && v.get_int("save_total_limit") <= 0) config_error("{}: save_total_limit must be positive", where(v, "save_total_limit"));
  if (v.get_int("max_steps") <= 0 && v.get_float("num_train_epochs") <= 0)
    config_error("{}: num_train_epochs must be positive when max_steps is not set", where(v, "num_train_epochs"));
  if (v.get_bool("bf16") && v.get_bool("fp16")) config_error("{}: bf16 and fp16 cannot both be true", where(v, "fp16"));
  for (const char* k : {"adam_beta1", "adam_beta2"})
    if (!(v.get_float(k) >= 0 && v.get_float(k) < 1)) config_error("{}: {} must lie in [0, 1), got {}", where(v, k), k, v.get_float(k));
  if (!(v.get_float("adam_epsilon") > 0)) config_error("{}: adam_epsilon must be positive", where(v, "adam_epsilon"));
  // float16 needs dynamic loss scaling, which gym does not implement (on any device).
  if (v.get_bool("fp16")) config_error("{}: fp16 is not supported (no loss scaling); use bf16: true or float32", where(v, "fp16"));
  if (!std::regex_match(v.get_string("device"), std::regex("auto|cpu|cuda|cuda:[0-9]{1,3}")))
    config_error("{}: device must be auto, cpu, cuda or cuda:N, got '{}'", where(v, "device"), v.get_string("device"));
  if (v.get_bool("use_dora")) config_error("{}: use_dora is not supported (gym trains plain LoRA)", where(v, "use_dora"));

  // ---- method consistency
  const bool full = v.get_string("finetuning_type") == "full";
  if (full) {
    for (const char* k : {"lora_rank", "lora_alpha", "lora_dropout", "lora_target", "use_rslora"})
      if (v.explicitly_set(k))
        config_error("{}: key '{}' only applies with finetuning_type lora, but finetuning_type is full", where(v, k), k);
  }
  if (!v.is_null("quantization_bit")) {
    const int64_t bits = v.get_int("quantization_bit");
    if (bits == 8) config_error("{}: quantization_bit 8 is not supported; gym loads 4-bit NF4/FP4 bases (quantization_bit: 4)", where(v, "quantization_bit"));
    if (bits != 4) config_error("{}: quantization_bit must be 4, got {}", where(v, "quantization_bit"), bits);
    if (full) config_error("{}: quantization_bit needs finetuning_type lora (a 4-bit base is frozen)", where(v, "quantization_bit"));
  }
  {
    const int64_t bs = v.get_int("quantization_blocksize");
    if (bs < 32 || bs > 4096 || (bs & (bs - 1)) != 0)
      config_error("{}: quantization_blocksize must be a power of two in 32 ... 4096, got {}", where(v, "quantization_blocksize"), bs);
  }

  // ---- RL consistency
  const bool rl = v.get_string("stage") != "sft";
  const auto funcs = v.get_list("reward_funcs");
  const auto weights = v.get_float_list("reward_weights");
  if (rl) {
    if (v.get_int("num_generations") < 2) config_error("{}: num_generations must be at least 2 (advantages compare completions of one prompt)", where(v, "num_generations"));
    const int64_t gbs = v.get_int("generation_batch_size");
    if (gbs % v.get_int("num_generations") != 0)
      config_error("{}: the completions per generation ({} = per_device_train_batch_size {} × world size {} × steps_per_generation {}) must be divisible by num_generations {}",
                   where(v, "num_generations"), gbs, v.get_int("per_device_train_batch_size"), world,
                   v.get_int("steps_per_generation"), v.get_int("num_generations"));
    const int64_t local = v.get_int("per_device_train_batch_size") * v.get_int("steps_per_generation");
    if (world > 1 && local % v.get_int("num_generations") != 0)
      config_error("{}: each prompt's group is generated on one process: per_device_train_batch_size {} × steps_per_generation {} = {} "
                   "must be divisible by num_generations {} with {} processes",
                   where(v, "num_generations"), v.get_int("per_device_train_batch_size"), v.get_int("steps_per_generation"), local,
                   v.get_int("num_generations"), world);
    if (funcs.empty()) config_error("{}: reward_funcs is empty; name at least one of accuracy, format, length, external", where(v, "reward_funcs"));
  }
  for (const auto& f : funcs) {
    static const std::set<std::string> known = {"accuracy", "format", "length", "external"};
    if (!known.count(f)) config_error("{}: unknown reward function '{}' (known: accuracy, format, length, external)", where(v, "reward_funcs"), f);
    if (f == "external" && v.get_string("reward_command").empty())
      config_error("{}: the external reward needs reward_command", where(v, "reward_funcs"));
  }
  if (weights.size() != funcs.size())
    config_error("{}: reward_weights has {} values but reward_funcs has {}", where(v, "reward_weights"), weights.size(), funcs.size());
  if (v.get_float("epsilon_high") < v.get_float("epsilon") && rl)
    warnings.push_back("epsilon_high is smaller than epsilon: the upper clip range is the narrower one");

  // ---- report_to: tensorboard is written by gym itself (metrics/tensorboard.h)
  for (const auto& r : v.get_list("report_to"))
    if (r != "none" && r != "" && r != "tensorboard")
      warnings.push_back("report_to '" + r + "' is not available; metrics go to trainer_log.jsonl" +
                         std::string(r == "all" ? " (and TensorBoard only when report_to names tensorboard)" : " only"));

  // ---- evaluation (HF TrainingArguments' rules, with HF's wording where HF has one)
  one_of(v, "eval_strategy", {"no", "steps", "epoch"});
  derive(v, "eval_steps", v.get("logging_steps").value.Scalar(), "= logging_steps");
  positive(v, "eval_steps");
  positive(v, "per_device_eval_batch_size");
  const std::string eval_strategy = v.get_string("eval_strategy");
  const bool evaluates = eval_strategy != "no" || v.get_bool("do_eval") || v.get_bool("eval_on_start");
  const bool has_eval_data = v.get_float("val_size") > 0 || !v.get_list("eval_dataset").empty();
  if (!v.get_list("eval_dataset").empty() && v.get_float("val_size") > 0)
    config_error("{}: val_size cannot be set together with eval_dataset (the eval split comes from one of them, as in LLaMA-Factory)", where(v, "val_size"));
  if (evaluates && !has_eval_data) {
    const char* key = eval_strategy != "no" ? "eval_strategy" : v.get_bool("do_eval") ? "do_eval" : "eval_on_start";
    config_error("{}: key '{}' needs an eval split: set val_size (a fraction < 1 or a row count) or eval_dataset", where(v, key), key);
  }
  if (v.get_bool("do_predict")) {   // LLaMA-Factory's SFT predict
    if (v.get_string("stage") != "sft")
      config_error("{}: do_predict writes generated_predictions.jsonl for stage sft (GRPO/GSPO: do_eval gives eval_reward)", where(v, "do_predict"));
    if (!v.get_bool("predict_with_generate"))
      config_error("{}: do_predict needs predict_with_generate: true (loss-only prediction is not implemented; do_eval gives eval_loss)",
                   where(v, "do_predict"));
    if (!has_eval_data) config_error("{}: key 'do_predict' needs an eval split: set eval_dataset or val_size", where(v, "do_predict"));
  }
  if (!v.get_bool("do_train") && !v.get_bool("do_predict"))
    config_error("{}: do_train: false leaves nothing to do without do_predict", where(v, "do_train"));
  const bool early_stopping = !v.is_null("early_stopping_patience");
  if (early_stopping && v.get_int("early_stopping_patience") <= 0)
    config_error("{}: early_stopping_patience must be positive, got {}", where(v, "early_stopping_patience"), v.get_int("early_stopping_patience"));
  if (!(v.get_float("early_stopping_threshold") >= 0) || !std::isfinite(v.get_float("early_stopping_threshold")))
    config_error("{}: early_stopping_threshold must be >= 0", where(v, "early_stopping_threshold"));
  for (const char* k : {"load_best_model_at_end", "early_stopping_patience"}) {
    const bool on = std::string(k) == "load_best_model_at_end" ? v.get_bool(k) : early_stopping;
    if (on && eval_strategy == "no")
      config_error("{}: {} needs evaluations during training: set eval_strategy steps (and val_size or eval_dataset)", where(v, k), k);
  }
  if (v.get_bool("load_best_model_at_end")) {
    if (eval_strategy != "steps")
      config_error("{}: load_best_model_at_end needs eval_strategy steps: gym saves checkpoints every save_steps (HF: the save and "
                   "evaluation strategy need to match)", where(v, "eval_strategy"));
    const double es = v.get_float("eval_steps");
    if (es >= 1) {
      const int64_t save = v.get_int("save_steps");
      if (es != std::floor(es) || save % static_cast<int64_t>(es) != 0)
        config_error("{}: load_best_model_at_end requires the saving steps to be a round multiple of the evaluation steps, but "
                     "found {}, which is not a round multiple of {}", where(v, "save_steps"), save, v.get("eval_steps").value.Scalar());
    }
  }
  std::string best_metric;
  bool greater = false;
  if (v.get_bool("load_best_model_at_end") || early_stopping || !v.is_null("metric_for_best_model")) {
    best_metric = v.is_null("metric_for_best_model") ? (rl_stage_name(v) ? "reward" : "loss") : v.get_string("metric_for_best_model");
    if (best_metric.rfind("eval_", 0) == 0) best_metric = best_metric.substr(5);
    const std::set<std::string> known = rl_stage_name(v) ? std::set<std::string>{"reward", "reward_std"} : std::set<std::string>{"loss"};
    if (!known.count(best_metric))
      config_error("{}: metric_for_best_model '{}' is not an eval metric of stage {} (it logs {})", where(v, "metric_for_best_model"),
                   v.get_string("metric_for_best_model"), v.get_string("stage"),
                   rl_stage_name(v) ? "eval_reward, eval_reward_std" : "eval_loss");
    best_metric = "eval_" + best_metric;
    greater = v.is_null("greater_is_better") ? best_metric.size() < 4 || best_metric.substr(best_metric.size() - 4) != "loss"
                                             : v.get_bool("greater_is_better");
  }

  // ---- fill the structs
  auto& m = c.model;
  m.model_name_or_path = v.get_string("model_name_or_path");
  m.adapter_name_or_path = v.get_string("adapter_name_or_path");
  m.template_name = v.get_string("template");
  m.enable_thinking = v.get_bool("enable_thinking");
  m.create_model_preset = v.get_string("create_model_preset");
  m.create_model_arch = v.get_string("create_model_arch");
  m.create_model_seed = v.get_int("create_model_seed");
  m.adapter_warm_start = v.get_string("adapter_warm_start");

  auto& l = c.lora;
  l.finetuning_type = v.get_string("finetuning_type");
  l.rank = v.get_int("lora_rank");
  l.alpha = v.get_float("lora_alpha");
  l.dropout = v.get_float("lora_dropout");
  l.target = v.get_list("lora_target");
  l.use_rslora = v.get_bool("use_rslora");
  l.additional_target = v.get_list("additional_target");

  auto& q = c.quant;
  q.bits = v.is_null("quantization_bit") ? 0 : v.get_int("quantization_bit");
  q.type = v.get_string("quantization_type");
  q.double_quantization = v.get_bool("double_quantization");
  q.blocksize = v.get_int("quantization_blocksize");

  auto& d = c.data;
  d.dataset = v.get_list("dataset");
  d.eval_dataset = v.get_list("eval_dataset");
  d.dataset_dir = v.get_string("dataset_dir");
  d.cutoff_len = v.get_int("cutoff_len");
  if (!v.is_null("max_samples")) d.max_samples = v.get_int("max_samples");
  d.val_size = v.get_float("val_size");
  d.packing = v.get_bool("packing");
  d.train_on_prompt = v.get_bool("train_on_prompt");
  d.mask_history = v.get_bool("mask_history");
  d.default_system = v.get_string("default_system");
  d.seed = v.get_int("seed");

  auto& r = c.rl;
  r.num_generations = v.get_int("num_generations");
  r.max_prompt_length = v.get_int("max_prompt_length");
  r.max_completion_length = v.get_int("max_completion_length");
  r.num_iterations = v.get_int("num_iterations");
  r.steps_per_generation = v.get_int("steps_per_generation");
  r.generation_batch_size = v.get_int("generation_batch_size");
  r.beta = v.get_float("beta");
  r.epsilon = v.get_float("epsilon");
  r.epsilon_high = v.get_float("epsilon_high");
  if (!v.is_null("delta")) r.delta = v.get_float("delta");
  r.importance_sampling_level = v.get_string("importance_sampling_level");
  r.loss_type = v.get_string("loss_type");
  r.scale_rewards = v.get_string("scale_rewards");
  r.mask_truncated_completions = v.get_bool("mask_truncated_completions");
  r.log_completions = v.get_bool("log_completions");
  r.temperature = v.get_float("temperature");
  r.top_p = v.get_float("top_p");
  r.top_k = v.get_int("top_k");
  r.repetition_penalty = v.get_float("repetition_penalty");
  r.reward_funcs = funcs;
  r.reward_weights = weights;
  r.reward_command = v.get_string("reward_command");
  r.reward_timeout = v.get_float("reward_timeout");
  r.reward_sandbox = v.get_bool("reward_sandbox");
  r.reward_memory_mb = v.get_int("reward_memory_mb");
  r.reward_max_processes = v.get_int("reward_max_processes");
  r.reward_max_output_mb = v.get_int("reward_max_output_mb");
  r.length_target = v.get_int("length_target");

  auto& t = c.training;
  t.stage = v.get_string("stage");
  t.per_device_train_batch_size = v.get_int("per_device_train_batch_size");
  t.gradient_accumulation_steps = v.get_int("gradient_accumulation_steps");
  t.learning_rate = v.get_float("learning_rate");
  t.num_train_epochs = v.get_float("num_train_epochs");
  t.max_steps = v.get_int("max_steps");
  t.lr_scheduler_type = v.get_string("lr_scheduler_type");
  t.warmup_ratio = v.get_float("warmup_ratio");
  t.warmup_steps = v.get_int("warmup_steps");
  t.weight_decay = v.get_float("weight_decay");
  t.adam_beta1 = v.get_float("adam_beta1");
  t.adam_beta2 = v.get_float("adam_beta2");
  t.adam_epsilon = v.get_float("adam_epsilon");
  t.max_grad_norm = v.get_float("max_grad_norm");
  t.bf16 = v.get_bool("bf16");
  t.fp16 = v.get_bool("fp16");
  t.device = v.get_string("device");
  t.gradient_checkpointing = v.get_bool("gradient_checkpointing");
  t.seed = v.get_int("seed");
  if (!v.is_null("router_aux_loss_coef")) t.router_aux_loss_coef = v.get_float("router_aux_loss_coef");
  t.router_aux_loss_scope = v.get_string("router_aux_loss_scope");
  t.max_nonfinite_steps = v.get_int("max_nonfinite_steps");
  t.max_new_tokens = v.get_int("max_new_tokens");

  auto& o = c.output;
  o.output_dir = v.get_string("output_dir");
  o.overwrite_output_dir = v.get_bool("overwrite_output_dir");
  o.logging_steps = v.get_float("logging_steps");
  o.save_steps = v.get_int("save_steps");
  if (!v.is_null("save_total_limit")) o.save_total_limit = v.get_int("save_total_limit");
  o.resume_from_checkpoint = v.get_string("resume_from_checkpoint");
  o.plot_loss = v.get_bool("plot_loss");
  o.report_to = v.get_list("report_to");
  o.logging_dir = v.get_string("logging_dir");

  auto& e = c.eval;
  e.strategy = eval_strategy;
  e.steps = v.get_float("eval_steps");
  e.per_device_batch_size = v.get_int("per_device_eval_batch_size");
  e.do_eval = v.get_bool("do_eval");
  e.on_start = v.get_bool("eval_on_start");
  e.do_predict = v.get_bool("do_predict");
  e.do_train = v.get_bool("do_train");
  e.load_best_model_at_end = v.get_bool("load_best_model_at_end");
  e.metric_for_best_model = best_metric;
  e.greater_is_better = greater;
  e.early_stopping_patience = early_stopping ? v.get_int("early_stopping_patience") : 0;
  e.early_stopping_threshold = v.get_float("early_stopping_threshold");

  auto& ds = c.dist;
  ds.deepspeed = v.get_string("deepspeed");
  ds.backend = v.get_string("ddp_backend");
  ds.timeout_minutes = std::max<int64_t>(1, v.get_int("ddp_timeout") / 60);
  ds.timeout_seconds = v.get_int("ddp_timeout");
  return c;
}

}  // namespace gym::config
