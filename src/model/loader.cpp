#include "gym/model/loader.h"

#include <fmt/format.h>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/io/safetensors.h"
#include "gym/quant/nf4.h"

#include <malloc.h>

namespace gym::model {

namespace {

bool is_lora_name(const std::string& n) {
  return n.find(".lora_A.") != std::string::npos || n.find(".lora_B.") != std::string::npos;
}

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace

void check_quantization_config(const nlohmann::json& qc, const std::string& source) {
  const std::string method = qc.value("quant_method", "bitsandbytes");
  if (method != "bitsandbytes")
    config_error("{}: quant_method '{}' is not supported (gym reads bitsandbytes 4-bit nf4; GPTQ/AWQ/others are not)", source, method);
  if (qc.value("load_in_8bit", false) || qc.value("_load_in_8bit", false))
    config_error("{}: 8-bit bitsandbytes checkpoints are not supported (4-bit nf4 only)", source);
  if (!qc.value("load_in_4bit", qc.value("_load_in_4bit", false))) config_error("{}: quantization_config is not load_in_4bit", source);
  const std::string type = qc.value("bnb_4bit_quant_type", "fp4");
  if (type != "nf4") config_error("{}: bnb_4bit_quant_type '{}' is not supported (nf4)", source, type);
}

namespace {

// Installs a frozen 4-bit base on a linear layer.
void set_nf4(gym::nn::LinearImpl& lin, quant::Nf4Weight w) {
  auto holder = std::make_shared<quant::Nf4Weight>(std::move(w));
  auto base = std::make_shared<gym::nn::QuantizedBase>();
  base->forward = [holder](const torch::Tensor& x) { return quant::nf4_linear(x, *holder); };
  base->dequantize = [holder](torch::Dtype dt) { return quant::dequantize_nf4(*holder, dt); };
  base->bits_per_param = quant::nf4_bits_per_param(*holder);
  lin.set_quantized_base(base);
}

bool quantizable(const std::string& module) {
  return module != "lm_head" && module.find("embed_tokens") == std::string::npos &&
         !(module.size() >= 9 && module.compare(module.size() - 9, 9, ".mlp.gate") == 0);
}

}  // namespace

Qwen3ForCausalLM load_model(const std::filesystem::path& dir, torch::Dtype dtype, const QuantLoad& quant) {
  const ArchConfig cfg = load_arch_config(dir);
  const bool prequantized = !cfg.quantization_config.is_null();
  if (prequantized) check_quantization_config(cfg.quantization_config, (dir / "config.json").string());
  // Parameters are allocated uninitialised (no pages touched): a weight that is quantized as it is
  // read never exists in float32 beside the others.
  Qwen3ForCausalLM model(cfg, torch::TensorOptions().dtype(dtype));
  io::CheckpointTensors tensors(dir);
  std::vector<std::string> missing;
  std::set<std::string> used;
  torch::NoGradGuard guard;
  std::map<std::string, gym::nn::LinearImpl*> linears;
  for (auto& item : model->named_modules("", false))
    if (auto* lin = item.value()->as<gym::nn::LinearImpl>()) linears[item.key() + ".weight"] = lin;
  for (auto& [wname, lin] : linears) {
    const std::string module = wname.substr(0, wname.size() - 7);
    if (prequantized && tensors.contains(wname + ".quant_state.bitsandbytes__nf4")) {
      auto get = [&](const std::string& n) { return tensors.contains(n) ? tensors.load(n) : torch::Tensor(); };
      auto w = quant::nf4_from_bnb_tensors(wname, get);
      if (w.shape != std::vector<int64_t>{lin->out_features, lin->in_features})
        config_error("{}: tensor '{}' has shape [{}] but config.json implies [{}, {}]", dir.string(), wname, fmt::join(w.shape, ", "),
                     lin->out_features, lin->in_features);
      for (const char* suffix : {"", ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".quant_state.bitsandbytes__nf4"})
        if (tensors.contains(wname + suffix)) used.insert(wname + suffix);
      set_nf4(*lin, std::move(w));
    } else if (prequantized && tensors.contains(wname + ".quant_state.bitsandbytes__fp4")) {
      config_error("{}: tensor '{}' is fp4; gym reads nf4 4-bit weights", dir.string(), wname);
    } else if (quant.bits == 4 && quantizable(module) && tensors.contains(wname)) {
      const auto& info = tensors.info(wname);
      if (info.shape != std::vector<int64_t>{lin->out_features, lin->in_features})
        config_error("{}: tensor '{}' has shape {} but config.json implies [{}, {}]", dir.string(), wname, shape_str(info.shape),
                     lin->out_features, lin->in_features);
      set_nf4(*lin, quant::quantize_nf4(tensors.load(wname), quant.blocksize, quant.double_quant));
      used.insert(wname);
    }
  }
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
  // Quantizing layer by layer leaves freed float32 buffers in the allocator: return them.
  if (quant.bits == 4 || prequantized) malloc_trim(0);
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

void save_model_bnb4(Qwen3ForCausalLMImpl& model, const std::filesystem::path& dir, torch::Dtype dtype) {
  save_model(model, dir, dtype);
  auto tensors = base_state_dict(model, dtype);
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, t] : tensors) {
    const bool is_linear_weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 && t.dim() == 2 &&
                                  quantizable(name.substr(0, name.size() - 7)) && name.find("norm") == std::string::npos;
    if (!is_linear_weight) {
      out[name] = t;
      continue;
    }
    for (auto& [k, v] : quant::nf4_to_bnb_tensors(name, quant::quantize_nf4(t, 64, true))) out[k] = v;
  }
  io::save_safetensors(dir / "model.safetensors", out);
  auto cfg = nlohmann::json::parse(read_file(dir / "config.json"));
  cfg["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"load_in_8bit", false},
                                {"bnb_4bit_quant_type", "nf4"}, {"bnb_4bit_use_double_quant", true},
                                {"bnb_4bit_compute_dtype", dtype == torch::kBFloat16 ? "bfloat16" : "float32"},
                                {"bnb_4bit_quant_storage", "uint8"}, {"llm_int8_skip_modules", nullptr}};
  write_file_atomic(dir / "config.json", cfg.dump(2) + "\n");
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
