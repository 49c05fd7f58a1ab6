// Building a model from a Hugging Face folder, and writing one.
#pragma once
#include <filesystem>
#include <string>

#include "gym/model/qwen3.h"

namespace gym::model {

// Loads config.json + safetensors (single or sharded) into a new model in `dtype`. Tensors are
// matched to parameters by their Hugging Face names; a shape mismatch names the tensor, and all
// missing or unexpected tensors are listed in one error. lm_head.weight is ignored when tied,
// rotary inv_freq buffers always.
// 4-bit loading: quantize_bits 4 quantizes every projection (not embeddings, norms, lm_head or
// the MoE router) to NF4 as it is read; a bitsandbytes pre-quantized folder (config.json
// quantization_config) loads its packed weights without re-quantizing.
struct QuantLoad {
  int64_t bits = 0;          // 0 or 4
  int64_t blocksize = 64;
  bool double_quant = true;
};
Qwen3ForCausalLM load_model(const std::filesystem::path& model_dir, torch::Dtype dtype = torch::kFloat32,
                            const QuantLoad& quant = {});

// Validates a config.json quantization_config: bitsandbytes 4-bit nf4 only.
void check_quantization_config(const nlohmann::json& qc, const std::string& source);

// Random weights from a seed: normal · 0.02 as HF, norms 1, and the embedding normal · 0.3.
void init_random_weights(Qwen3ForCausalLMImpl& model, uint64_t seed);

// config.json, model.safetensors and generation_config.json (written atomically). LoRA
// factors are not part of a base checkpoint and are skipped.
void save_model(Qwen3ForCausalLMImpl& model, const std::filesystem::path& dir, torch::Dtype dtype = torch::kFloat32);

// The same as a bitsandbytes 4-bit checkpoint: every projection (not embeddings, norms, lm_head
// or the router) as NF4 with double quantization, config.json with quantization_config.
void save_model_bnb4(Qwen3ForCausalLMImpl& model, const std::filesystem::path& dir, torch::Dtype dtype = torch::kFloat32);

// The base parameters by HF name (LoRA factors excluded), dense weights materialised.
std::map<std::string, torch::Tensor> base_state_dict(Qwen3ForCausalLMImpl& model, torch::Dtype dtype);

}  // namespace gym::model
