#include "config/schema.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

namespace gym::config {

const std::vector<KeyDef>& key_table() {
  using K = KeyType;
  static const std::vector<KeyDef> table = {
      // model
      {"model_name_or_path", "model", K::String, "null", "Local model folder or hub id (looked up in the Hugging Face cache; gym never downloads)."},
      {"adapter_name_or_path", "model", K::String, "null", "PEFT LoRA adapter folder(s) to load, comma-separated."},
      {"template", "model", K::String, "qwen3", "Chat template: qwen3, qwen3_nothink or empty."},
      {"enable_thinking", "model", K::Bool, "true", "Qwen3 thinking mode: false appends the empty think block to prompts."},
      {"create_model_preset", "model", K::String, "null", "gym extension: when model_name_or_path does not exist, create a random model of this preset there (tiny, small, qwen-like) with a byte-level tokenizer."},
      {"create_model_arch", "model", K::String, "qwen3", "Architecture for create_model_preset: qwen3, qwen3_moe, qwen3_next or qwen3_omni_moe."},
      {"create_model_seed", "model", K::Int, "0", "Seed of the created model's random weights."},
      {"adapter_warm_start", "model", K::String, "null", "gym extension: a config (path relative to this file) that trains adapter_name_or_path first when that folder does not exist yet (e.g. an SFT warm start before GSPO)."},
      // method
      {"stage", "method", K::String, "sft", "Training stage: sft, grpo or gspo."},
      {"finetuning_type", "method", K::String, "lora", "lora (adapters on a frozen base) or full (all weights)."},
      {"lora_rank", "method", K::Int, "8", "LoRA rank r."},
      {"lora_alpha", "method", K::Float, "null", "LoRA alpha; scaling = alpha / r (alpha / sqrt(r) with use_rslora). Default 2 × lora_rank."},
      {"lora_dropout", "method", K::Float, "0.0", "Dropout on the LoRA input."},
      {"lora_target", "method", K::List, "all", "Modules to adapt: all (every linear but lm_head and the MoE router; LLaMA-Factory's all also adapts the router: add gate to match) or names such as q_proj,v_proj; patterns like experts.*.gate_proj and gate (MoE router) are allowed."},
      {"use_rslora", "method", K::Bool, "false", "Rank-stabilised LoRA scaling alpha / sqrt(r)."},
      {"use_dora", "method", K::Bool, "false", "DoRA (not supported: must stay false)."},
      {"additional_target", "method", K::List, "null", "Extra modules trained fully and saved (modules_to_save)."},
      // quantization
      {"quantization_bit", "quantization", K::Int, "null", "4 loads the frozen base in 4-bit (QLoRA)."},
      {"quantization_method", "quantization", K::String, "bnb", "Quantization backend; gym implements bitsandbytes' format (bnb)."},
      {"quantization_type", "quantization", K::String, "nf4", "4-bit data type: nf4 or fp4."},
      {"double_quantization", "quantization", K::Bool, "true", "Quantize the per-block absmax again (bitsandbytes double quant)."},
      {"quantization_blocksize", "quantization", K::Int, "64", "NF4 block size (32 ... 4096, a power of two)."},
      // data
      {"dataset", "data", K::List, "null", "Dataset names from dataset_dir/dataset_info.json, or paths to .json/.jsonl/.csv/.tsv files, comma-separated (CSV/TSV: a header row and RFC 4180 quoting; Parquet is refused with how to convert it)."},
      {"eval_dataset", "data", K::List, "null", "Evaluation datasets."},
      {"dataset_dir", "data", K::String, "data", "Folder holding dataset_info.json (relative paths resolve against the config file, then the working directory)."},
      {"cutoff_len", "data", K::Int, "2048", "Maximum tokens of prompt + response."},
      {"max_samples", "data", K::Int, "null", "Keep at most this many rows of each dataset."},
      {"val_size", "data", K::Float, "0.0", "Validation split: a fraction (< 1) or a row count (>= 1)."},
      {"packing", "data", K::Bool, "false", "Pack several SFT examples into one sequence."},
      {"train_on_prompt", "data", K::Bool, "false", "Also train on prompt tokens."},
      {"mask_history", "data", K::Bool, "false", "Train only on the last assistant turn."},
      {"default_system", "data", K::String, "null", "System prompt used when a row has none."},
      // rl
      {"num_generations", "rl", K::Int, "8", "Completions sampled per prompt (the group size G)."},
      {"max_prompt_length", "rl", K::Int, "512", "Prompts are truncated from the left to this many tokens."},
      {"max_completion_length", "rl", K::Int, "256", "Maximum completion tokens."},
      {"num_iterations", "rl", K::Int, "1", "Optimisation passes per generation batch (mu)."},
      {"steps_per_generation", "rl", K::Int, "null", "Optimizer micro-steps per generation batch; default gradient_accumulation_steps."},
      {"generation_batch_size", "rl", K::Int, "null", "Completions per generation; default per_device_train_batch_size × world size × steps_per_generation."},
      {"beta", "rl", K::Float, "0.0", "KL coefficient (k3 estimator against the base with adapters off)."},
      {"epsilon", "rl", K::Float, "0.2", "Lower clip range."},
      {"epsilon_high", "rl", K::Float, "null", "Upper clip range; default epsilon."},
      {"delta", "rl", K::Float, "null", "Two-sided clipping bound of the ratio (off when null)."},
      {"importance_sampling_level", "rl", K::String, "token", "token (GRPO), sequence (GSPO) or sequence_token (GSPO-token)."},
      {"loss_type", "rl", K::String, "dapo", "Loss aggregation: grpo, bnpo, dr_grpo or dapo."},
      {"scale_rewards", "rl", K::String, "group", "Advantage scaling: group, batch or none (true = group, false = none)."},
      {"mask_truncated_completions", "rl", K::Bool, "false", "Exclude completions that hit max_completion_length from the loss."},
      {"log_completions", "rl", K::Bool, "false", "At each logging step, append the last round's completions (prompt, completion, rewards per function, advantage; all ranks) to completions.jsonl in output_dir."},
      {"temperature", "rl", K::Float, "1.0", "Sampling temperature (log-probs are computed under it)."},
      {"top_p", "rl", K::Float, "1.0", "Nucleus sampling."},
      {"top_k", "rl", K::Int, "null", "Top-k sampling (off when null or 0)."},
      {"repetition_penalty", "rl", K::Float, "1.0", "Repetition penalty (1.0 = off)."},
      {"reward_funcs", "rl", K::List, "accuracy", "Reward functions: accuracy, format, length, external."},
      {"reward_weights", "rl", K::FloatList, "null", "One weight per reward function; default all 1.0."},
      {"reward_command", "rl", K::String, "null", "Shell command of the external reward (JSON lines in, one number per line out)."},
      {"reward_timeout", "rl", K::Float, "60", "Seconds the external reward command may take per batch (also its CPU-time limit)."},
      {"reward_sandbox", "rl", K::Bool, "true", "Run the external reward in namespaces (bubblewrap): no network, read-only filesystem (docs/rewards.md)."},
      {"reward_memory_mb", "rl", K::Int, "4096", "Address-space limit of each process of the external reward command, in MiB."},
      {"reward_max_processes", "rl", K::Int, "256", "Processes the external reward command may add."},
      {"reward_max_output_mb", "rl", K::Int, "16", "Output (stdout + stderr, and each file) the external reward command may write, in MiB."},
      {"length_target", "rl", K::Int, "null", "Completion length beyond which the length reward penalises; default max_completion_length."},
      // training
      {"per_device_train_batch_size", "training", K::Int, "8", "Micro-batch size per process (RL: completions, not prompts)."},
      {"gradient_accumulation_steps", "training", K::Int, "1", "Micro-batches per optimizer step."},
      {"learning_rate", "training", K::Float, "5e-5", "Peak learning rate of AdamW."},
      {"num_train_epochs", "training", K::Float, "3.0", "Epochs over the dataset (ignored when max_steps > 0)."},
      {"max_steps", "training", K::Int, "-1", "Total optimizer steps; overrides num_train_epochs when > 0."},
      {"lr_scheduler_type", "training", K::String, "linear", "constant, constant_with_warmup, linear or cosine."},
      {"warmup_ratio", "training", K::Float, "0.0", "Warm-up as a fraction of total steps."},
      {"warmup_steps", "training", K::Int, "0", "Warm-up steps (wins over warmup_ratio when > 0)."},
      {"weight_decay", "training", K::Float, "0.0", "AdamW weight decay."},
      {"adam_beta1", "training", K::Float, "0.9", "AdamW beta1."},
      {"adam_beta2", "training", K::Float, "0.999", "AdamW beta2."},
      {"adam_epsilon", "training", K::Float, "1e-8", "AdamW epsilon."},
      {"max_grad_norm", "training", K::Float, "1.0", "Gradient clipping norm (0 = off)."},
      {"bf16", "training", K::Bool, "false", "Compute in bfloat16."},
      {"fp16", "training", K::Bool, "false", "Compute in float16: refused (gym has no loss scaling); use bf16."},
      {"device", "training", K::String, "auto", "Where the model, NF4 buffers, LoRA, optimizer state, caches and sampling live: auto (cuda:LOCAL_RANK when a CUDA device is visible, else cpu), cpu, cuda (cuda:LOCAL_RANK) or cuda:N (one process only)."},
      {"gradient_checkpointing", "training", K::Bool, "true", "Recompute layer activations in backward to save memory (LLaMA-Factory's default)."},
      {"seed", "training", K::Int, "42", "Seed for weights init, shuffling, dropout and sampling."},
      {"router_aux_loss_coef", "training", K::Float, "null", "MoE load-balancing loss coefficient (null: the model's config.json value, as transformers uses it; 0.001 when that has none)."},
      {"router_aux_loss_scope", "training", K::String, "rank", "MoE load balancing over several processes: rank (each rank's own batch, as transformers) or global (expert token fractions all-reduced: the loss of the global batch, as Qwen3's global-batch balancing)."},
      {"max_nonfinite_steps", "training", K::Int, "10", "Consecutive non-finite steps (skipped) before the run stops."},
      {"max_new_tokens", "training", K::Int, "512", "Tokens to generate (gym generate)."},
      // output
      {"output_dir", "output", K::String, "null", "Where adapters, logs and checkpoints go."},
      {"overwrite_output_dir", "output", K::Bool, "false", "Start afresh in a non-empty output_dir instead of refusing or resuming."},
      {"logging_steps", "output", K::Float, "10", "Log every N steps (< 1: fraction of total steps). Each logged value is the mean over the steps since the previous log (as the HF Trainer and TRL log), except `lr` and `grad_norm`, which are the last step's."},
      {"save_steps", "output", K::Int, "500", "Write checkpoint-N every N steps."},
      {"save_total_limit", "output", K::Int, "null", "Keep at most this many checkpoints."},
      {"resume_from_checkpoint", "output", K::String, "null", "A checkpoint folder, or true for the latest in output_dir."},
      {"plot_loss", "output", K::Bool, "false", "Write training_loss.svg (and reward plots for RL)."},
      {"report_to", "output", K::List, "none", "Loggers: none or tensorboard (event files under logging_dir, tags as the HF TensorBoard callback: train/loss, train/learning_rate, eval/loss, ...); trainer_log.jsonl is always written."},
      {"logging_dir", "output", K::String, "null", "TensorBoard folder; default output_dir/runs/<date>_<host> (a new one per run, as HF)."},
      // evaluation
      {"eval_strategy", "evaluation", K::String, "no", "When to evaluate during training: no, steps (every eval_steps) or epoch (at each epoch's end). Needs val_size or eval_dataset."},
      {"eval_steps", "evaluation", K::Float, "null", "Evaluate every N steps (< 1: fraction of total steps); default logging_steps."},
      {"per_device_eval_batch_size", "evaluation", K::Int, "8", "Eval micro-batch size per process (SFT; RL evaluates one prompt at a time)."},
      {"do_eval", "evaluation", K::Bool, "false", "Evaluate once more after training: eval_results.json, merged into all_results.json."},
      {"do_predict", "evaluation", K::Bool, "false", "SFT: after training (instead of it with do_train: false) complete each prompt of the eval split greedily (up to max_new_tokens) and write generated_predictions.jsonl ({prompt, predict, label}, as LLaMA-Factory) and predict_results.json."},
      {"predict_with_generate", "evaluation", K::Bool, "false", "Required with do_predict: predictions are generated (loss-only prediction is not implemented)."},
      {"do_train", "evaluation", K::Bool, "true", "false: no training step; with do_predict, a prediction run on the base model and adapter_name_or_path."},
      {"eval_on_start", "evaluation", K::Bool, "false", "Evaluate before the first step (a fresh run only)."},
      {"load_best_model_at_end", "evaluation", K::Bool, "false", "At the end, the saved weights are those of the checkpoint with the best metric_for_best_model (needs eval_strategy steps and save_steps a multiple of eval_steps, as HF)."},
      {"metric_for_best_model", "evaluation", K::String, "null", "loss (SFT: eval_loss) or reward / reward_std (RL: eval_reward, eval_reward_std); the eval_ prefix is optional. Default loss (SFT), reward (RL)."},
      {"greater_is_better", "evaluation", K::Bool, "null", "Whether a larger metric is better; default false for a metric ending in loss, else true (HF)."},
      {"early_stopping_patience", "evaluation", K::Int, "null", "Stop when the metric failed to improve by more than early_stopping_threshold for this many evaluations in a row (HF's EarlyStoppingCallback)."},
      {"early_stopping_threshold", "evaluation", K::Float, "0.0", "The improvement over the best metric that counts for early stopping."},
      // distributed
      {"deepspeed", "distributed", K::String, "null", "DeepSpeed JSON (stage 0/1/2; \"auto\" fields resolve from this config). Stage 3 runs as stage 2 with the base replicated, and offload_* moves nothing: gym validate and train warn."},
      {"ddp_backend", "distributed", K::String, "auto", "auto (NCCL on GPU, Gloo on CPU), gloo or nccl."},
      {"ddp_timeout", "distributed", K::Int, "1800", "Collective timeout in seconds."},
  };
  return table;
}

const KeyDef* find_key(const std::string& name) {
  static const std::map<std::string, const KeyDef*> index = [] {
    std::map<std::string, const KeyDef*> m;
    for (const auto& k : key_table()) m[k.name] = &k;
    return m;
  }();
  auto it = index.find(name);
  return it == index.end() ? nullptr : it->second;
}

const char* type_name(KeyType t) {
  switch (t) {
    case KeyType::Bool: return "bool";
    case KeyType::Int: return "int";
    case KeyType::Float: return "float";
    case KeyType::String: return "string";
    case KeyType::List: return "list of strings";
    case KeyType::FloatList: return "list of floats";
  }
  return "?";
}

const char* stage_default(const std::string& key, const std::string& stage) {
  // GSPO paper recipe (TRL paper_index.md): sequence level, grpo aggregation, eps 3e-4/4e-4, beta 0.
  static const std::map<std::string, std::map<std::string, const char*>> defaults = {
      {"gspo", {{"importance_sampling_level", "sequence"}, {"epsilon", "3e-4"}, {"epsilon_high", "4e-4"},
                {"beta", "0.0"}, {"loss_type", "grpo"}, {"learning_rate", "1e-6"}}},
      {"grpo", {{"importance_sampling_level", "token"}, {"learning_rate", "1e-6"}}},
  };
  auto s = defaults.find(stage);
  if (s == defaults.end()) return nullptr;
  auto k = s->second.find(key);
  return k == s->second.end() ? nullptr : k->second;
}

bool is_group_name(const std::string& name) {
  static const std::set<std::string> groups = {"trl", "model", "method", "lora", "quantization", "data",
                                               "rl", "training", "train", "output", "evaluation", "distributed"};
  return groups.count(name) > 0;
}

namespace {
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}
}  // namespace

std::string nearest_key(const std::string& name) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& k : key_table()) {
    size_t d = edit_distance(name, k.name);
    // A key that contains the typo (or vice versa) is a strong hint too.
    if (std::strstr(k.name, name.c_str()) || name.find(k.name) != std::string::npos) d = std::min<size_t>(d, 2);
    if (d < best_d) best_d = d, best = k.name;
  }
  return best_d <= std::max<size_t>(3, name.size() / 3) ? best : "";
}

}  // namespace gym::config
