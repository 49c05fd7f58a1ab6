#include "config/foreign_keys.h"

#include <algorithm>
#include <cctype>

namespace gym::config {

namespace {

constexpr auto R = ForeignUse::Renamed;
constexpr auto I = ForeignUse::Implemented;
constexpr auto W = ForeignUse::Warned;
constexpr auto G = ForeignUse::Guarded;

const char* kLf = "LLaMA-Factory";
const char* kHf = "HF TrainingArguments";
const char* kTrl = "TRL";
const char* kAx = "Axolotl";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

const std::vector<ForeignKey>& foreign_keys() {
  static const std::vector<ForeignKey> keys = {
      // ---- the same meaning under gym's name
      {"base_model", kAx, R, "model_name_or_path", ""},
      {"micro_batch_size", kAx, R, "per_device_train_batch_size", ""},
      {"num_epochs", kAx, R, "num_train_epochs", ""},
      {"lr_scheduler", kAx, R, "lr_scheduler_type", ""},
      {"sequence_len", kAx, R, "cutoff_len", ""},
      {"lora_r", kAx, R, "lora_rank", ""},
      {"val_set_size", kAx, R, "val_size", ""},
      {"chat_template", kAx, R, "template", ""},
      {"evaluation_strategy", kHf, R, "eval_strategy", "the name before transformers 4.46"},
      {"lr", kAx, R, "learning_rate", ""},
      {"rl_beta", kAx, R, "beta", ""},
      {"max_prompt_len", kAx, R, "max_prompt_length", ""},
      {"load_in_4bit_blocksize", kAx, R, "quantization_blocksize", ""},
      {"bnb_4bit_use_double_quant", kAx, R, "double_quantization", ""},
      {"bnb_4bit_quant_type", kAx, R, "quantization_type", "nf4 or fp4"},
      {"moe_aux_loss_coef", kLf, R, "router_aux_loss_coef", "LLaMA-Factory writes it into the model config's router_aux_loss_coef"},
      {"train_on_inputs", kAx, R, "train_on_prompt", ""},
      {"lora_modules_to_save", kAx, R, "additional_target", "PEFT's modules_to_save"},
      {"lora_target_modules", kAx, R, "lora_target", ""},
      // ---- special rules
      {"load_in_4bit", kAx, I, "", "true → quantization_bit 4"},
      {"load_in_8bit", kAx, I, "", "true → quantization_bit 8, which is refused (gym loads 4-bit bases)"},
      {"lora_target_linear", kAx, I, "", "true → lora_target all"},
      {"adapter", kAx, I, "", "lora or qlora → finetuning_type lora (qlora with load_in_4bit)"},
      {"rl", kAx, I, "", "grpo or gspo → stage (with a trl: block of TRL keys)"},
      {"disable_gradient_checkpointing", kLf, I, "", "true → gradient_checkpointing false"},
      {"save_strategy", kHf, I, "", "steps: checkpoints every save_steps (gym's rule); no: no checkpoints during training (save_steps 2147483647; the final "
                                    "adapter is still written); epoch and best are refused"},
      // ---- accepted, not used: speed, memory, logging, hub or environment knobs
      {"trust_remote_code", kLf, W, "", "gym implements the Qwen3 families itself"},
      {"cache_dir", kLf, W, "", "models are local folders (created ones under GYM_CACHE)"},
      {"model_revision", kLf, W, "", "no model hub"},
      {"use_fast_tokenizer", kLf, W, "", "gym's tokenizer reads tokenizer.json"},
      {"preprocessing_num_workers", kLf, W, "", ""},
      {"overwrite_cache", kLf, W, "", ""},
      {"tokenized_path", kLf, W, "", ""},
      {"streaming", kLf, W, "", "datasets are read whole"},
      {"buffer_size", kLf, W, "", ""},
      {"flash_attn", kLf, W, "", "gym's attention is its own (the same math)"},
      {"use_unsloth", kLf, W, "", "speed only"},
      {"enable_liger_kernel", kLf, W, "", "speed only"},
      {"use_liger_kernel", kAx, W, "", "speed only"},
      {"upcast_layernorm", kLf, W, "", "gym computes norms in float32 already"},
      {"use_reentrant_gc", kLf, W, "", ""},
      {"infer_backend", kLf, W, "", "inference server setting"},
      {"infer_dtype", kLf, W, "", "inference server setting"},
      {"vllm_maxlen", kLf, W, "", "inference server setting"},
      {"print_param_status", kLf, W, "", ""},
      {"image_max_pixels", kLf, W, "", "gym trains the Omni thinker on text"},
      {"video_max_pixels", kLf, W, "", "gym trains the Omni thinker on text"},
      {"freeze_vision_tower", kLf, W, "", "gym trains the Omni thinker on text"},
      {"create_new_adapter", kLf, W, "", ""},
      {"preserve_thinking", kLf, W, "", ""},
      {"ddp_find_unused_parameters", kHf, W, "", ""},
      {"save_only_model", kHf, W, "", "gym's checkpoints keep the optimizer state for resume"},
      {"logging_first_step", kHf, W, "", ""},
      {"logging_strategy", kHf, W, "", "gym logs every logging_steps"},
      {"run_name", kHf, W, "", ""},
      {"tf32", kHf, W, "", "GPU matmul precision setting"},
      {"dataloader_num_workers", kHf, W, "", ""},
      {"dataloader_pin_memory", kHf, W, "", ""},
      {"remove_unused_columns", kHf, W, "", ""},
      {"push_to_hub", kHf, W, "", "no model hub"},
      {"hub_model_id", kHf, W, "", "no model hub"},
      {"log_level", kHf, W, "", ""},
      {"torch_compile", kHf, W, "", "speed only"},
      {"gradient_checkpointing_kwargs", kHf, W, "", "gym's checkpointing is non-reentrant"},
      {"label_names", kHf, W, "", ""},
      {"include_num_input_tokens_seen", kHf, W, "", "gym logs total_tokens always"},
      {"disable_tqdm", kHf, W, "", "the progress line is drawn only on a terminal"},
      {"save_safetensors", kHf, W, "", "gym always writes safetensors"},
      {"local_rank", kHf, W, "", "gym reads the launcher's environment"},
      {"full_determinism", kHf, W, "", "gym's CPU runs are deterministic"},
      {"data_seed", kHf, G, "", "gym's sampler follows seed: set seed instead"},
      {"group_by_length", "HF TrainingArguments, Axolotl", G, "", "length-grouped batches are not implemented"},
      {"ignore_data_skip", kHf, W, "", ""},
      {"prediction_loss_only", kHf, W, "", ""},
      {"eval_accumulation_steps", kHf, W, "", ""},
      {"lr_scheduler_kwargs", kHf, G, "", "not read: the schedule is lr_scheduler_type's with warmup"},
      {"neftune_noise_alpha", "LLaMA-Factory, HF TrainingArguments", G, "", "no NEFTune noise is added to the embeddings"},
      {"use_vllm", kTrl, W, "", "gym samples with its own KV cache"},
      {"vllm_mode", kTrl, W, "", ""},
      {"vllm_gpu_memory_utilization", kTrl, W, "", ""},
      {"vllm_server_host", kTrl, W, "", ""},
      {"vllm_server_port", kTrl, W, "", ""},
      {"vllm_tensor_parallel_size", kTrl, W, "", ""},
      {"ref_model_mixup_alpha", kTrl, W, "", "only used with sync_ref_model"},
      {"ref_model_sync_steps", kTrl, W, "", "only used with sync_ref_model"},
      {"num_completions_to_print", kTrl, W, "", "see log_completions"},
      {"use_liger_loss", kTrl, W, "", "speed only"},
      {"disable_dropout", kTrl, G, "", "set lora_dropout: 0"},
      {"shuffle_dataset", kTrl, W, "", "gym's sampler always shuffles (false is not honoured)"},
      {"strict", kAx, W, "", ""},
      {"val_set_seed", kAx, W, "", "the split follows seed"},
      {"flash_attention", kAx, W, "", ""},
      {"sdp_attention", kAx, W, "", ""},
      {"xformers_attention", kAx, W, "", ""},
      {"wandb_project", kAx, W, "", "report_to: tensorboard is implemented"},
      {"wandb_entity", kAx, W, "", ""},
      {"wandb_name", kAx, W, "", ""},
      {"wandb_log_model", kAx, W, "", ""},
      {"tokenizer_type", kAx, W, "", "the tokenizer comes from the model folder"},
      {"model_type", kAx, W, "", "the architecture comes from config.json"},
      {"pad_to_sequence_len", kAx, W, "", "memory only"},
      {"eval_sample_packing", kAx, W, "", ""},
      {"evals_per_epoch", kAx, W, "", "use eval_strategy / eval_steps"},
      {"saves_per_epoch", kAx, W, "", "use save_steps"},
      {"debug", kAx, W, "", ""},
      {"fsdp", kAx, W, "", "data parallel: gym's launcher (DeepSpeed ZeRO-1/2 settings are read)"},
      {"fsdp_config", kAx, W, "", ""},
      {"dataset_prepared_path", kAx, W, "", ""},
      {"output_dir_suffix", kAx, W, "", ""},
      // ---- refused unless harmless: ignoring another value would change what is computed
      {"optim", kHf, G, "adamw_torch|adamw_torch_fused|adamw_hf|adamw",
       "gym trains with AdamW, float32 states (8-bit, paged, Adafactor, SGD, ... are not implemented)"},
      {"optimizer", kAx, G, "adamw_torch|adamw_torch_fused|adamw_hf|adamw",
       "gym trains with AdamW, float32 states (Axolotl's usual adamw_bnb_8bit is not implemented)"},
      {"rope_scaling", kLf, G, "", "RoPE scaling (linear, dynamic, yarn, llama3) is not implemented"},
      {"shift_attn", kLf, G, "", "LongLoRA's shifted sparse attention is not implemented"},
      {"pure_bf16", kLf, G, "", "use bf16: true (bfloat16 frozen base, float32 adapters and optimizer)"},
      {"resize_vocab", kLf, G, "", "gym keeps the model's vocabulary"},
      {"neat_packing", kLf, G, "", "use packing"},
      {"mix_strategy", kLf, G, "concat", "several datasets are concatenated (interleaving is not implemented)"},
      {"sync_ref_model", kTrl, G, "", "the reference model is the frozen base; syncing it (TR-DPO) is not implemented"},
      {"min_p", kTrl, G, "", "min-p sampling is not implemented (top_k, top_p, temperature are)"},
      {"generation_kwargs", kTrl, G, "", "sampling is set by temperature, top_k, top_p, repetition_penalty"},
      {"datasets", kAx, G, "", "Axolotl's datasets list is not read: use dataset and dataset_dir (LLaMA-Factory's dataset_info.json)"},
      {"special_tokens", kAx, G, "", "gym keeps the model's tokenizer and vocabulary"},
      {"tokens", kAx, G, "", "gym keeps the model's tokenizer and vocabulary"},
      {"lora_fan_in_fan_out", kAx, G, "", "gym's LoRA layers are nn.Linear layout"},
      {"sample_packing", kAx, G, "", "use packing"},
  };
  return keys;
}

const ForeignKey* find_foreign_key(const std::string& name) {
  for (const auto& k : foreign_keys())
    if (name == k.name) return &k;
  return nullptr;
}

bool foreign_value_harmless(const ForeignKey& k, const YAML::Node& value) {
  if (!value.IsDefined() || value.IsNull()) return true;
  if (value.IsSequence() || value.IsMap()) return value.size() == 0;
  const std::string v = lower(value.Scalar());
  if (v.empty() || v == "null" || v == "~" || v == "none" || v == "false" || v == "0" || v == "0.0") return true;
  const std::string allowed = k.target ? k.target : "";
  size_t start = 0;
  while (start <= allowed.size() && !allowed.empty()) {
    const size_t bar = allowed.find('|', start);
    if (allowed.substr(start, bar == std::string::npos ? std::string::npos : bar - start) == v) return true;
    if (bar == std::string::npos) break;
    start = bar + 1;
  }
  return false;
}

std::string foreign_use_text(const ForeignKey& k) {
  switch (k.use) {
    case ForeignUse::Renamed: return std::string("= `") + k.target + "`";
    case ForeignUse::Implemented: return "implemented";
    case ForeignUse::Warned: return "warned";
    case ForeignUse::Guarded: {
      std::string s = "refused unless off";
      if (k.target && *k.target) {
        std::string list(k.target);
        std::replace(list.begin(), list.end(), '|', ',');
        s += " or one of " + list;
      }
      return s;
    }
  }
  return "";
}

}  // namespace gym::config
