#include "cli/train_summary.h"

#include <fmt/format.h>

namespace gym::cli {

std::string train_summary(const config::ResolvedConfig& rc) {
  const auto& c = rc.config;
  std::string s = "# summary\n";
  s += fmt::format("#   stage {} on {}{}\n", c.training.stage,
                   c.model.model_name_or_path.empty() ? "(no model_name_or_path)" : c.model.model_name_or_path,
                   c.model.create_model_preset.empty() ? "" : " (created from preset '" + c.model.create_model_preset + "' if missing)");
  if (c.lora.finetuning_type == "lora")
    s += fmt::format("#   LoRA r={} alpha={} dropout={} on {}{}\n", c.lora.rank, c.lora.alpha, c.lora.dropout,
                     fmt::join(c.lora.target, ","), c.quant.bits == 4 ? " over a 4-bit " + c.quant.type + " base" : "");
  else
    s += "#   full fine-tuning of every weight\n";
  s += fmt::format("#   data: {} (template {}, cutoff_len {})\n",
                   c.data.dataset.empty() ? "(none: this config cannot train)" : fmt::format("{}", fmt::join(c.data.dataset, ",")),
                   c.model.template_name, c.data.cutoff_len);
  s += fmt::format("#   batch {} × accumulation {}, lr {} ({}), {}\n", c.training.per_device_train_batch_size,
                   c.training.gradient_accumulation_steps, c.training.learning_rate, c.training.lr_scheduler_type,
                   c.training.max_steps > 0 ? fmt::format("{} steps", c.training.max_steps)
                                            : fmt::format("{} epochs", c.training.num_train_epochs));
  if (c.is_rl())
    s += fmt::format("#   RL: {} generations/prompt, {} level, loss {}, eps {}/{}, beta {}, rewards {}\n",
                     c.rl.num_generations, c.rl.importance_sampling_level, c.rl.loss_type, c.rl.epsilon,
                     c.rl.epsilon_high, c.rl.beta, fmt::join(c.rl.reward_funcs, ","));
  s += fmt::format("#   output: {}\n", c.output.output_dir.empty() ? "(no output_dir)" : c.output.output_dir);
  if (!c.dist.deepspeed.empty()) s += fmt::format("#   deepspeed: {} (ZeRO stage {})\n", c.dist.deepspeed, c.dist.zero_stage);
  return s;
}

}  // namespace gym::cli
