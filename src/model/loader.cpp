#include "gym/model/loader.h"

#include <fmt/format.h>
#include <malloc.h>

#include <set>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/io/safetensors.h"
#include "gym/model/family.h"
#include "gym/nn/linear.h"
#include "gym/nn/norm.h"
#include "gym/quant/nf4.h"

namespace gym::model {

namespace {

bool is_lora_name(const std::string& n) {
  return n.find(".lora_A.") != std::string::npos || n.find(".lora_B.") != std::string::npos;
}

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// Installs a frozen 4-bit base on a linear layer.
void set_nf4(nn::LinearImpl& lin, quant::Nf4Weight w) {
  auto holder = std::make_shared<quant::Nf4Weight>(std::move(w));
  auto base = std::make_shared<nn::QuantizedBase>();
  base->forward = [holder](const torch::Tensor& x) { return quant::nf4_linear(x, *holder); };
  base->dequantize = [holder](torch::Dtype dt) { return quant::dequantize_nf4(*holder, dt); };
  base->bits_per_param = quant::nf4_bits_per_param(*holder);
  // The codes and block statistics as the layer's buffers (bitsandbytes' Params4bit names, '.' → '_').
  base->buffers.emplace_back("weight_nf4", holder->packed);
  if (holder->double_quant) {
    base->buffers.emplace_back("weight_absmax", holder->nested.codes);
    base->buffers.emplace_back("weight_nested_absmax", holder->nested.absmax);
  } else {
    base->buffers.emplace_back("weight_absmax", holder->absmax);
  }
  lin.set_quantized_base(base);
}

// Projections are quantized; the router, scalar gates and the head stay in full precision.
bool quantizable(const nn::LinearImpl& lin) { return lin.role == nn::LinearRole::kProjection; }

// Module name + ".weight" → linear layer.
std::map<std::string, nn::LinearImpl*> linear_layers(torch::nn::Module& root) {
  std::map<std::string, nn::LinearImpl*> out;
  for (auto& item : root.named_modules("", false))
    if (auto* lin = item.value()->as<nn::LinearImpl>()) out[item.key() + ".weight"] = lin;
  return out;
}

std::string list_cut(const std::vector<std::string>& names, size_t shown = 12) {
  if (names.size() <= shown) return fmt::format("{}", fmt::join(names, ", "));
  return fmt::format("{}, ... ({} in all)", fmt::join(names.begin(), names.begin() + static_cast<long>(shown), ", "), names.size());
}

}  // namespace

void check_quantization_config(const nlohmann::json& qc, const std::string& source) {
  if (!qc.is_object()) config_error("{}: quantization_config must be an object", source);
  const std::string method = qc.value("quant_method", "bitsandbytes");
  if (method != "bitsandbytes")
    config_error("{}: quant_method '{}' is not supported (gym reads bitsandbytes 4-bit nf4; GPTQ/AWQ/others are not)", source, method);
  if (qc.value("load_in_8bit", false) || qc.value("_load_in_8bit", false))
    config_error("{}: 8-bit bitsandbytes checkpoints are not supported (4-bit nf4 only)", source);
  if (!qc.value("load_in_4bit", qc.value("_load_in_4bit", false))) config_error("{}: quantization_config is not load_in_4bit", source);
  const std::string type = qc.value("bnb_4bit_quant_type", "fp4");
  if (type != "nf4") config_error("{}: bnb_4bit_quant_type '{}' is not supported (nf4)", source, type);
}

CausalLM load_model(const std::filesystem::path& dir, torch::Dtype dtype, const QuantLoad& quant) {
  const ArchConfig cfg = load_arch_config(dir);
  const auto& family = model_family(cfg.model_type);
  const bool prequantized = !cfg.quantization_config.is_null();
  if (prequantized) check_quantization_config(cfg.quantization_config, (dir / "config.json").string());
  io::CheckpointTensors tensors(dir);
  // Before allocating: a config.json that implies far more weights than the files hold is an error,
  // not an allocation failure (4-bit files hold ~1/8 of the float32 bytes; 16× leaves room).
  double held = 0;
  for (const auto& n : tensors.names()) {
    const auto& info = tensors.info(n);
    held += static_cast<double>(info.end - info.begin);
  }
  const double implied = cfg.num_parameters() * static_cast<double>(torch::elementSize(dtype));
  if (implied > 16 * held + (64 << 20))
    config_error("{}: config.json implies {:.3g} parameters ({:.3g} GB in {}) but the safetensors hold only {:.3g} GB; check "
                 "hidden_size, num_hidden_layers, vocab_size and the expert counts",
                 (dir / "config.json").string(), cfg.num_parameters(), implied / 1e9, torch::toString(dtype), held / 1e9);
  // Parameters are allocated uninitialised (no pages touched): a weight that is quantized as it is
  // read never exists in float32 beside the others.
  CausalLM model = build_model(cfg, torch::TensorOptions().dtype(dtype));
  std::vector<std::string> missing;
  std::set<std::string> used;
  torch::NoGradGuard guard;
  for (auto& [local, lin] : linear_layers(*model)) {
    const std::string wname = model->checkpoint_name(local);
    const std::vector<int64_t> want = {lin->out_features, lin->in_features};
    if (prequantized && tensors.contains(wname + ".quant_state.bitsandbytes__nf4")) {
      auto get = [&](const std::string& n) { return tensors.contains(n) ? tensors.load(n) : torch::Tensor(); };
      auto w = quant::nf4_from_bnb_tensors(wname, get);
      if (w.shape != want)
        config_error("{}: tensor '{}' has shape {} but config.json implies {}", dir.string(), wname, shape_str(w.shape), shape_str(want));
      for (const char* suffix : {"", ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".quant_state.bitsandbytes__nf4"})
        if (tensors.contains(wname + suffix)) used.insert(wname + suffix);
      set_nf4(*lin, std::move(w));
    } else if (prequantized && tensors.contains(wname + ".quant_state.bitsandbytes__fp4")) {
      config_error("{}: tensor '{}' is fp4; gym reads nf4 4-bit weights", dir.string(), wname);
    } else if (quant.bits == 4 && quantizable(*lin) && tensors.contains(wname)) {
      const auto& info = tensors.info(wname);
      if (info.shape != want)
        config_error("{}: tensor '{}' has shape {} but config.json implies {}", dir.string(), wname, shape_str(info.shape), shape_str(want));
      set_nf4(*lin, quant::quantize_nf4(tensors.load(wname), quant.blocksize, quant.double_quant));
      used.insert(wname);
    }
  }
  for (auto& item : model->named_parameters()) {
    const std::string name = model->checkpoint_name(item.key());
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
    if (used.count(n) || family.foreign_tensor(n)) continue;
    if (n.find("rotary_emb.inv_freq") != std::string::npos) continue;
    if (n == model->checkpoint_name("lm_head.weight") && cfg.tie_word_embeddings) continue;   // tied: the embedding is used
    unexpected.push_back(n);
  }
  if (!missing.empty() || !unexpected.empty())
    config_error("{}: checkpoint does not match config.json: missing tensors [{}]; unexpected tensors [{}]", dir.string(),
                 list_cut(missing), list_cut(unexpected));
  return model;
}

void init_random_weights(CausalLMImpl& model, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard guard;
  std::set<const void*> norms;   // (1 + w) norms start at 0, the others at 1
  for (auto& item : model.named_modules("", false)) {
    if (auto* n = item.value()->as<nn::RMSNormImpl>()) n->weight.fill_(n->unit_offset ? 0.0 : 1.0), norms.insert(n->weight.data_ptr());
    if (auto* n = item.value()->as<nn::RMSNormGatedImpl>()) n->weight.fill_(1.0), norms.insert(n->weight.data_ptr());
  }
  // Drawn in place: for float32 parameters the values at::normal/uniform would draw into a
  // temporary, without the full-size temporary (the embedding's is 65 MB on the bench shape).
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& p = item.value();
    if (is_lora_name(name) || norms.count(p.data_ptr())) continue;
    const std::string leaf = name.substr(name.rfind('.') + 1);
    if (leaf == "A_log") {
      p.uniform_(0.01, 16.0, gen).log_();
    } else if (leaf == "dt_bias") {
      p.fill_(1.0);
    } else if (name == "model.embed_tokens.weight" || name == "lm_head.weight") {
      // Wider than HF's 0.02: a toy model's frozen embedding and head must leave its logits room
      // to move, or LoRA training cannot lower the loss far below log(vocab).
      p.normal_(0.0, 0.3, gen);
    } else {
      p.normal_(0.0, 0.02, gen);
    }
  }
}

std::map<std::string, torch::Tensor> base_state_dict(CausalLMImpl& model, torch::Dtype dtype) {
  std::map<std::string, torch::Tensor> out;
  for (auto& item : model.named_parameters()) {
    if (is_lora_name(item.key())) continue;
    out[model.checkpoint_name(item.key())] = item.value().detach().to(dtype).contiguous();
  }
  // Linears with a quantized base have no weight parameter: materialise them.
  for (auto& [local, lin] : linear_layers(model))
    if (lin->quantized_base()) out[model.checkpoint_name(local)] = lin->dense_weight(dtype).contiguous();
  return out;
}

namespace {

// The source checkpoint's tensors that are not the text model's, byte for byte.
void add_foreign_tensors(const CausalLMImpl& model, const std::filesystem::path& source_dir, std::map<std::string, torch::Tensor>& out) {
  if (source_dir.empty()) return;
  const auto& family = model_family(model.config().model_type);
  io::CheckpointTensors src(source_dir);
  for (const auto& n : src.names())
    if (family.foreign_tensor(n) && !out.count(n)) out[n] = src.load(n);
}

void write_config_files(const CausalLMImpl& model, const std::filesystem::path& dir, torch::Dtype dtype, const nlohmann::json& quant) {
  ArchConfig cfg = model.config();
  cfg.torch_dtype = dtype == torch::kBFloat16 ? "bfloat16" : "float32";
  cfg.quantization_config = quant;
  write_file_atomic(dir / "config.json", arch_config_to_json(cfg).dump(2) + "\n");
  nlohmann::json gen = {{"do_sample", true}, {"temperature", 0.7}, {"top_p", 0.8}, {"top_k", 20}};
  if (!cfg.eos_token_ids.empty()) gen["eos_token_id"] = cfg.eos_token_ids;
  if (cfg.pad_token_id) gen["pad_token_id"] = *cfg.pad_token_id;
  write_file_atomic(dir / "generation_config.json", gen.dump(2) + "\n");
}

}  // namespace

void save_model(CausalLMImpl& model, const std::filesystem::path& dir, torch::Dtype dtype, const std::filesystem::path& source_dir) {
  std::filesystem::create_directories(dir);
  auto tensors = base_state_dict(model, dtype);
  add_foreign_tensors(model, source_dir, tensors);
  io::save_safetensors(dir / "model.safetensors", tensors);
  write_config_files(model, dir, dtype, nullptr);
}

void save_model_bnb4(CausalLMImpl& model, const std::filesystem::path& dir, torch::Dtype dtype, const std::filesystem::path& source_dir) {
  std::filesystem::create_directories(dir);
  std::map<std::string, nn::LinearImpl*> by_checkpoint_name;
  for (auto& [local, lin] : linear_layers(model)) by_checkpoint_name[model.checkpoint_name(local)] = lin;
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, t] : base_state_dict(model, dtype)) {
    auto it = by_checkpoint_name.find(name);
    if (it == by_checkpoint_name.end() || !quantizable(*it->second)) {
      out[name] = t;
      continue;
    }
    for (auto& [k, v] : quant::nf4_to_bnb_tensors(name, quant::quantize_nf4(t, 64, true))) out[k] = v;
  }
  add_foreign_tensors(model, source_dir, out);
  io::save_safetensors(dir / "model.safetensors", out);
  const nlohmann::json qc = {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"load_in_8bit", false},
                             {"bnb_4bit_quant_type", "nf4"}, {"bnb_4bit_use_double_quant", true},
                             {"bnb_4bit_compute_dtype", dtype == torch::kBFloat16 ? "bfloat16" : "float32"},
                             {"bnb_4bit_quant_storage", "uint8"}, {"llm_int8_skip_modules", nullptr}};
  write_config_files(model, dir, dtype, qc);
}

}  // namespace gym::model
