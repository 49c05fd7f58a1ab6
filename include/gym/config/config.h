// Typed configuration: one struct per concern; each module receives only its own struct.
// Keys, types, defaults and help live in one table (src/config/schema.cpp); docs/config.md is
// generated from it.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace gym::config {

struct ModelArgs {
  std::string model_name_or_path;
  std::string adapter_name_or_path;            // comma-separated list allowed
  std::string template_name = "qwen3";         // key: template
  bool enable_thinking = true;
  std::string create_model_preset;             // create the base model on first use (tiny, ...)
  std::string create_model_arch = "qwen3";
  int64_t create_model_seed = 0;
  std::string adapter_warm_start;              // config that produces adapter_name_or_path if missing
};

struct LoraArgs {
  std::string finetuning_type = "lora";        // lora | full
  int64_t rank = 8;
  double alpha = 16;                           // default 2 × rank
  double dropout = 0.0;
  std::vector<std::string> target = {"all"};
  bool use_rslora = false;
  std::vector<std::string> additional_target;
};

struct QuantArgs {
  int64_t bits = 0;                            // 0 = no quantization; 4 = NF4/FP4
  std::string type = "nf4";
  bool double_quantization = true;
  int64_t blocksize = 64;
};

struct DataArgs {
  std::vector<std::string> dataset;
  std::vector<std::string> eval_dataset;
  std::string dataset_dir = "data";
  int64_t cutoff_len = 2048;
  std::optional<int64_t> max_samples;
  double val_size = 0.0;
  bool packing = false;
  bool train_on_prompt = false;
  bool mask_history = false;
  std::string default_system;
  int64_t seed = 42;                           // shuffle seed (= training seed)
};

struct RlArgs {
  int64_t num_generations = 8;
  int64_t max_prompt_length = 512;
  int64_t max_completion_length = 256;
  int64_t num_iterations = 1;
  int64_t steps_per_generation = 1;            // resolved: defaults to gradient_accumulation_steps
  int64_t generation_batch_size = 0;           // resolved: batch × world × steps_per_generation
  double beta = 0.0;
  double epsilon = 0.2;
  double epsilon_high = 0.2;                   // resolved: defaults to epsilon
  std::optional<double> delta;
  std::string importance_sampling_level = "token";   // token | sequence | sequence_token
  std::string loss_type = "dapo";              // grpo | bnpo | dr_grpo | dapo
  std::string scale_rewards = "group";         // group | batch | none
  bool mask_truncated_completions = false;
  bool log_completions = false;                // completions.jsonl: prompt, completion, rewards, advantage per logging step
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;                           // 0 = off
  double repetition_penalty = 1.0;
  std::vector<std::string> reward_funcs = {"accuracy"};
  std::vector<double> reward_weights;          // resolved: one 1.0 per reward function
  std::string reward_command;                  // for the `external` reward
  double reward_timeout = 60.0;
  bool reward_sandbox = true;                  // its limits: docs/rewards.md
  int64_t reward_memory_mb = 4096;
  int64_t reward_max_processes = 256;
  int64_t reward_max_output_mb = 16;
  int64_t length_target = 0;                   // for the `length` reward; 0 = max_completion_length
};

struct TrainingArgs {
  std::string stage = "sft";                   // sft | grpo | gspo
  int64_t per_device_train_batch_size = 8;
  int64_t gradient_accumulation_steps = 1;
  double learning_rate = 5e-5;
  double num_train_epochs = 3.0;
  int64_t max_steps = -1;
  std::string lr_scheduler_type = "linear";
  double warmup_ratio = 0.0;
  int64_t warmup_steps = 0;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;
  bool bf16 = false;
  std::string device = "auto";   // auto | cpu | cuda | cuda:N (auto: cuda:LOCAL_RANK when visible)
  bool fp16 = false;
  bool gradient_checkpointing = false;
  int64_t seed = 42;
  std::optional<double> router_aux_loss_coef;   // unset: the model's config.json value
  std::string router_aux_loss_scope = "rank";  // rank | global (MoE balancing over all ranks' tokens)
  int64_t max_nonfinite_steps = 10;            // consecutive skipped steps before the run stops
  int64_t max_new_tokens = 512;                // inference (generate)
};

struct OutputArgs {
  std::string output_dir;
  bool overwrite_output_dir = false;
  double logging_steps = 1;                    // < 1: ratio of total steps
  int64_t save_steps = 500;
  std::optional<int64_t> save_total_limit;
  std::string resume_from_checkpoint;          // "", a path, or "true" = latest
  bool plot_loss = false;
  std::vector<std::string> report_to = {"none"};   // none | tensorboard
  std::string logging_dir;                     // TensorBoard event files; "" = output_dir/runs/<date>_<host>
};

// Evaluation during training, as the HF Trainer (eval_strategy, load_best_model_at_end) and its
// EarlyStoppingCallback. The eval split comes from val_size or eval_dataset (DataArgs).
struct EvalArgs {
  std::string strategy = "no";                 // no | steps | epoch
  double steps = 10;                           // resolved: logging_steps when unset; < 1: fraction of total steps
  int64_t per_device_batch_size = 8;
  bool do_eval = false;                        // also evaluate once after training (eval_results.json)
  bool on_start = false;                       // evaluate before the first step
  bool do_predict = false;                     // SFT: generated_predictions.jsonl of the eval split (greedy)
  bool do_train = true;                        // false: no training step (a prediction run)
  bool load_best_model_at_end = false;
  std::string metric_for_best_model;           // resolved with the eval_ prefix: eval_loss (SFT), eval_reward (RL)
  bool greater_is_better = false;              // resolved: HF's default (false for *loss)
  int64_t early_stopping_patience = 0;         // 0 = off
  double early_stopping_threshold = 0.0;
  bool during_training() const { return strategy != "no"; }
  bool any() const { return during_training() || do_eval || on_start; }
  bool tracks_best() const { return load_best_model_at_end || early_stopping_patience > 0; }
};

struct DistArgs {
  std::string deepspeed;                       // path of a DeepSpeed JSON, resolved
  int64_t zero_stage = 0;
  bool offload_optimizer = false;
  bool offload_param = false;
  std::string backend = "auto";                // auto | gloo | nccl
  int64_t timeout_minutes = 30;
  int64_t timeout_seconds = 1800;              // ddp_timeout as given (rendezvous and collectives)
};

struct TrainConfig {
  ModelArgs model;
  LoraArgs lora;
  QuantArgs quant;
  DataArgs data;
  RlArgs rl;
  TrainingArgs training;
  OutputArgs output;
  EvalArgs eval;
  DistArgs dist;
  bool is_rl() const { return training.stage == "grpo" || training.stage == "gspo"; }
};

// Where a resolved value came from.
struct Origin {
  std::string kind;    // default | file | override | derived | deepspeed
  std::string where;   // "path:line" for file values, the argument for overrides
};

// The whole resolved configuration: every key of the table with its value and origin.
struct ResolvedConfig {
  TrainConfig config;
  std::map<std::string, std::string> values;   // key → YAML text of the value
  std::map<std::string, Origin> origins;
  std::vector<std::string> warnings;           // already logged once
  std::vector<std::filesystem::path> files;    // the YAML files read (root first)
  std::string to_yaml_with_origins() const;    // for `gym validate`
  std::string to_yaml() const;                 // for output_dir/gym_config.yaml
};

// Loads a YAML file (with `extends:`), applies command-line overrides (`--k v`, `--k=v`,
// `k=v`, dotted keys), resolves aliases, DeepSpeed and derived values, and validates.
// Throws gym::Error (config kind, exit 2) with one line naming file/key on any problem.
ResolvedConfig load_config(const std::filesystem::path& file, const std::vector<std::string>& overrides);

// The same starting from defaults only (for tests and tools that have no file).
ResolvedConfig load_config_from_string(const std::string& yaml, const std::vector<std::string>& overrides,
                                       const std::filesystem::path& pretend_path = "<string>");

// Markdown reference of every key (docs/config.md is this text).
std::string config_reference_markdown();

}  // namespace gym::config
