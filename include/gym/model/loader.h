// Building a model from a Hugging Face folder, and writing one.
#pragma once
#include <filesystem>
#include <map>
#include <string>

#include "gym/model/causal_lm.h"

namespace gym::model {

// Loads config.json + safetensors (single or sharded) into a new model of the family config.json
// names, in `dtype`. Tensors are matched to parameters by their Hugging Face names (with the
// family's prefix, e.g. "thinker."); a shape mismatch names the tensor, and all missing or
// unexpected tensors are listed in one error. lm_head.weight is ignored when tied, rotary
// inv_freq buffers always, and the family's foreign tensors (MTP, audio/vision towers, talker)
// are accepted without being read.
// 4-bit loading: quantize_bits 4 quantizes every projection (not embeddings, norms, lm_head, the
// MoE router or scalar gates) to NF4 as it is read; a bitsandbytes pre-quantized folder
// (config.json quantization_config) loads its packed weights without re-quantizing.
struct QuantLoad {
  int64_t bits = 0;          // 0 or 4
  int64_t blocksize = 64;
  bool double_quant = true;
};
CausalLM load_model(const std::filesystem::path& model_dir, torch::Dtype dtype = torch::kFloat32, const QuantLoad& quant = {});

// Validates a config.json quantization_config: bitsandbytes 4-bit nf4 only.
void check_quantization_config(const nlohmann::json& qc, const std::string& source);

// Random weights from a seed: normal · 0.02 as HF, norms at their identity (1, or 0 for (1 + w)
// norms), the embedding and an untied lm_head normal · 0.3, and Gated DeltaNet's A_log = log U(0.01, 16),
// dt_bias = 1 (transformers' init).
void init_random_weights(CausalLMImpl& model, uint64_t seed);

// config.json, model.safetensors and generation_config.json (written atomically). LoRA factors
// are not part of a base checkpoint and are skipped. With `source_dir`, the family's foreign
// tensors of that checkpoint (MTP, towers, talker) are copied byte for byte.
void save_model(CausalLMImpl& model, const std::filesystem::path& dir, torch::Dtype dtype = torch::kFloat32,
                const std::filesystem::path& source_dir = {});

// The same as a bitsandbytes 4-bit checkpoint: every projection as NF4 with double
// quantization, config.json with quantization_config.
void save_model_bnb4(CausalLMImpl& model, const std::filesystem::path& dir, torch::Dtype dtype = torch::kFloat32,
                     const std::filesystem::path& source_dir = {});

// The base parameters by checkpoint name (prefix included; LoRA factors excluded), dense
// weights materialised.
std::map<std::string, torch::Tensor> base_state_dict(CausalLMImpl& model, torch::Dtype dtype);

}  // namespace gym::model
