#include "gym/recipes/memory.h"

#include <fmt/format.h>

#include "gym/lora/targets.h"
#include "gym/quant/nf4.h"

namespace gym::recipes {

namespace {
std::string gib(double b) { return fmt::format("{:.3f} GiB", b / (1024.0 * 1024 * 1024)); }
}  // namespace

MemoryEstimate estimate_memory(const config::TrainConfig& c, const model::ArchConfig& a, int64_t world) {
  MemoryEstimate m;
  // gym loads the weights in float32 unless bf16 is on, and a full fine-tune keeps them in float32
  // even then (model_setup.cpp: they are the trained ones).
  const double dtype_bytes = c.training.bf16 && c.lora.finetuning_type == "lora" ? 2 : 4;
  const double h = a.hidden_size, d = a.head_dim;
  struct Lin {
    std::string name;
    double in, out;
    bool full_precision;   // router / scalar gate: never quantized
    bool router;
  };
  std::vector<Lin> lins;
  double extra = 0;   // non-linear parameters besides embeddings and norms (conv, A_log, dt_bias)
  for (int64_t i = 0; i < a.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    if (a.is_linear_attention(i)) {
      const double key = a.linear_num_key_heads * a.linear_key_head_dim, value = a.linear_num_value_heads * a.linear_value_head_dim;
      lins.push_back({p + ".linear_attn.in_proj_qkvz", h, 2 * key + 2 * value, false, false});
      lins.push_back({p + ".linear_attn.in_proj_ba", h, 2.0 * a.linear_num_value_heads, false, false});
      lins.push_back({p + ".linear_attn.out_proj", value, h, false, false});
      extra += (2 * key + value) * a.linear_conv_kernel_dim + 2.0 * a.linear_num_value_heads + a.linear_value_head_dim;
    } else {
      lins.push_back({p + ".self_attn.q_proj", h, a.num_attention_heads * d * (a.attn_output_gate ? 2 : 1), false, false});
      lins.push_back({p + ".self_attn.k_proj", h, a.num_key_value_heads * d, false, false});
      lins.push_back({p + ".self_attn.v_proj", h, a.num_key_value_heads * d, false, false});
      lins.push_back({p + ".self_attn.o_proj", a.num_attention_heads * d, h, false, false});
      extra += 2 * d;   // q_norm, k_norm
    }
    auto mlp = [&](const std::string& q, double inter) {
      lins.push_back({q + ".gate_proj", h, inter, false, false});
      lins.push_back({q + ".up_proj", h, inter, false, false});
      lins.push_back({q + ".down_proj", inter, h, false, false});
    };
    if (!a.is_moe_layer(i)) {
      mlp(p + ".mlp", static_cast<double>(a.intermediate_size));
      continue;
    }
    for (int64_t e = 0; e < a.num_experts; ++e) mlp(p + ".mlp.experts." + std::to_string(e), static_cast<double>(a.moe_intermediate_size));
    lins.push_back({p + ".mlp.gate", h, static_cast<double>(a.num_experts), true, true});
    if (a.shared_expert_intermediate_size > 0) {
      mlp(p + ".mlp.shared_expert", static_cast<double>(a.shared_expert_intermediate_size));
      lins.push_back({p + ".mlp.shared_expert_gate", h, 1, true, false});
    }
  }
  const double embed = a.vocab_size * h * (a.tie_word_embeddings ? 1 : 2);
  const double norms = a.num_hidden_layers * 2 * h + h + extra;
  const bool four_bit = c.quant.bits == 4;
  m.bits_per_quantized_param = four_bit ? quant::nf4_bits_per_param(4096 * 4096, c.quant.blocksize, c.quant.double_quantization) : 0;
  m.weights_bytes = (embed + norms) * dtype_bytes;
  const bool lora = c.lora.finetuning_type == "lora";
  for (const auto& l : lins) {
    const double n = l.in * l.out;
    if (four_bit && !l.full_precision) {
      m.quantized_params += n;
      m.weights_bytes += n * m.bits_per_quantized_param / 8;
    } else {
      m.weights_bytes += n * dtype_bytes;
    }
    if (lora && lora::is_target(l.name, c.lora.target, l.router)) m.trainable_params += c.lora.rank * (l.in + l.out);
  }
  if (!lora) m.trainable_params = embed + norms + [&] { double s = 0; for (const auto& l : lins) s += l.in * l.out; return s; }();
  m.adapter_bytes = lora ? m.trainable_params * 4 : 0;   // full FT trains the weights themselves
  m.gradient_bytes = m.trainable_params * 4;
  m.optimizer_bytes = m.trainable_params * 8;
  m.world = std::max<int64_t>(1, world);
  m.zero_stage = c.dist.zero_stage;
  if (m.world > 1 && m.zero_stage >= 1) m.optimizer_bytes /= static_cast<double>(m.world);
  if (m.world > 1 && m.zero_stage >= 2) m.gradient_bytes /= static_cast<double>(m.world);
  const double tokens = static_cast<double>(c.training.per_device_train_batch_size) *
                        (c.is_rl() ? c.rl.max_prompt_length + c.rl.max_completion_length : c.data.cutoff_len);
  // Per layer and token ≈ 34·H bytes (attention and MLP inputs/outputs) plus the MLP's 3 × intermediate
  // (fp32 here: ×2 of bf16 figures); with checkpointing only each layer's input stays, plus one layer.
  const double inter = a.is_moe() ? a.moe_intermediate_size * a.num_experts_per_tok : a.intermediate_size;
  const double per_layer = tokens * (17 * h + 3 * inter) * dtype_bytes;
  m.activation_bytes = c.training.gradient_checkpointing ? tokens * h * dtype_bytes * a.num_hidden_layers + per_layer
                                                         : per_layer * a.num_hidden_layers;
  m.activation_bytes += tokens * a.vocab_size * 4 * (c.is_rl() ? 1.0 : 0.0);   // RL log-probs over the vocabulary
  return m;
}

std::string MemoryEstimate::table() const {
  std::string s = world > 1 ? fmt::format("# memory estimate (per process of {}, ZeRO stage {}{})\n", world, zero_stage,
                                          zero_stage >= 3 ? ": runs as stage 2, the frozen base is replicated on every process" : "")
                            : std::string("# memory estimate (per process)\n");
  s += fmt::format("#   base weights      {:>14}{}\n", gib(weights_bytes),
                   quantized_params > 0 ? fmt::format("  ({:.3f} bits per 4-bit parameter, {:.0f} quantized)", bits_per_quantized_param, quantized_params) : "");
  s += fmt::format("#   trainable         {:>14}  ({:.0f} parameters)\n", gib(adapter_bytes), trainable_params);
  s += fmt::format("#   gradients         {:>14}\n", gib(gradient_bytes));
  s += fmt::format("#   optimizer (AdamW) {:>14}\n", gib(optimizer_bytes));
  s += fmt::format("#   activations       {:>14}  (one micro-batch)\n", gib(activation_bytes));
  s += fmt::format("#   total             {:>14}\n", gib(total()));
  return s;
}

}  // namespace gym::recipes
