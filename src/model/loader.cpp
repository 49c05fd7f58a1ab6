#include "gym/model/loader.h"

#include <fmt/format.h>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/io/safetensors.h"

namespace gym::model {

namespace {

bool is_lora_name(const std::string& n) {
  return n.find(".lora_A.") != std::string::npos || n.find(".lora_B.") != std::string::npos;
}

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace

Qwen3ForCausalLM load_model(const std::filesystem::path& dir, torch::Dtype dtype) {
  const ArchConfig cfg = load_arch_config(dir);
  if (!cfg.quantization_config.is_null())
    config_error("{}: this is a pre-quantized checkpoint (quantization_config); load it through the 4-bit loader",
                 (dir / "config.json").string());
  Qwen3ForCausalLM model(cfg, torch::TensorOptions().dtype(dtype));
  io::CheckpointTensors tensors(dir);
  std::vector<std::string> missing;
  std::set<std::string> used;
  torch::NoGradGuard guard;
  for (auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& param = item.value();
    if (is_lora_name(name)) continue;
    if (!tensors.contains(name)) {
      missing.push_back(name);
      continue;
    }
    const auto& info = tensors.info(name);
    if (info.shape != param.sizes().vec())
      config_error("{}: tensor '{}' has shape {} but config.json implies {}", dir.string(), name, shape_str(info.shape),
                   shape_str(param.sizes().vec()));
    param.copy_(tensors.load(name).to(dtype));
    used.insert(name);
  }
  std::vector<std::string> unexpected;
  for (const auto& n : tensors.names()) {
    if (used.count(n)) continue;
    if (n.find("rotary_emb.inv_freq") != std::string::npos) continue;
    if (n == "lm_head.weight" && cfg.tie_word_embeddings) continue;   // tied: the embedding is used
    unexpected.push_back(n);
  }
  if (!missing.empty() || !unexpected.empty())
    config_error("{}: checkpoint does not match config.json: missing tensors [{}]; unexpected tensors [{}]", dir.string(),
                 fmt::join(missing, ", "), fmt::join(unexpected, ", "));
  return model;
}

void init_random_weights(Qwen3ForCausalLMImpl& model, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard guard;
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& p = item.value();
    if (is_lora_name(name)) continue;
    if (name.find("norm") != std::string::npos) {
      p.fill_(1.0);
    } else if (name == "model.embed_tokens.weight") {
      // Wider than HF's 0.02: a toy model's frozen (tied) embedding must leave its logits room
      // to move, or LoRA training cannot lower the loss far below log(vocab).
      p.copy_(at::normal(0.0, 0.3, p.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat32)));
    } else {
      auto t = at::normal(0.0, 0.02, p.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat32));
      p.copy_(t);
    }
  }
}

std::map<std::string, torch::Tensor> base_state_dict(Qwen3ForCausalLMImpl& model, torch::Dtype dtype) {
  std::map<std::string, torch::Tensor> out;
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    if (is_lora_name(name)) continue;
    out[name] = item.value().detach().to(dtype).contiguous();
  }
  // Linears with a quantized base have no weight parameter: materialise them.
  for (auto& item : model.named_modules()) {
    auto* lin = item.value()->as<gym::nn::LinearImpl>();
    if (lin && lin->quantized_base()) out[item.key() + ".weight"] = lin->dense_weight(dtype).contiguous();
  }
  return out;
}

void save_model(Qwen3ForCausalLMImpl& model, const std::filesystem::path& dir, torch::Dtype dtype) {
  ArchConfig cfg = model.config();
  cfg.torch_dtype = dtype == torch::kBFloat16 ? "bfloat16" : "float32";
  cfg.quantization_config = nullptr;
  std::filesystem::create_directories(dir);
  io::save_safetensors(dir / "model.safetensors", base_state_dict(model, dtype));
  nlohmann::json j = arch_config_to_json(cfg);
  write_file_atomic(dir / "config.json", j.dump(2) + "\n");
  nlohmann::json gen = {{"do_sample", true}, {"temperature", 0.7}, {"top_p", 0.8}, {"top_k", 20}};
  if (!cfg.eos_token_ids.empty()) gen["eos_token_id"] = cfg.eos_token_ids;
  if (cfg.pad_token_id) gen["pad_token_id"] = *cfg.pad_token_id;
  write_file_atomic(dir / "generation_config.json", gen.dump(2) + "\n");
}

}  // namespace gym::model
