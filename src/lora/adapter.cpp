#include "gym/lora/adapter.h"

#include <fmt/format.h>

#include <set>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"
#include "gym/io/safetensors.h"
#include "gym/lora/targets.h"
#include "gym/nn/linear.h"

namespace gym::lora {

namespace {

std::vector<std::pair<std::string, nn::LinearImpl*>> linears(torch::nn::Module& root) {
  std::vector<std::pair<std::string, nn::LinearImpl*>> out;
  for (auto& item : root.named_modules("", /*include_self=*/false)) {
    auto* lin = item.value()->as<nn::LinearImpl>();
    if (lin) out.emplace_back(item.key(), lin);
  }
  return out;
}

std::string leaf(const std::string& name) { return name.substr(name.rfind('.') + 1); }

}  // namespace

std::vector<std::string> inject(torch::nn::Module& root, const config::LoraArgs& args) {
  for (auto& p : root.parameters()) p.set_requires_grad(false);
  std::vector<std::string> adapted;
  const double scaling = lora_scaling(args.alpha, args.rank, args.use_rslora);
  for (auto& [name, lin] : linears(root)) {
    if (!is_target(name, args.target, lin->role == nn::LinearRole::kRouter)) continue;
    if (!lin->has_lora()) lin->attach_lora(args.rank, scaling, args.dropout);
    lin->lora_A->weight.set_requires_grad(true);
    lin->lora_B->weight.set_requires_grad(true);
    adapted.push_back(name);
  }
  if (adapted.empty())
    config_error("lora_target [{}] matches no linear layer of the model (names look like model.layers.0.self_attn.q_proj)",
                 fmt::join(args.target, ","));
  return adapted;
}

void set_enabled(torch::nn::Module& root, bool enabled) {
  for (auto& [name, lin] : linears(root)) lin->lora_enabled = enabled;
}

std::map<std::string, torch::Tensor> adapter_tensors(torch::nn::Module& root, const std::string& prefix) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, lin] : linears(root)) {
    if (!lin->has_lora()) continue;
    out[peft_name(prefix + name, "lora_A")] = lin->lora_A->weight.detach().contiguous();
    out[peft_name(prefix + name, "lora_B")] = lin->lora_B->weight.detach().contiguous();
  }
  return out;
}

void save_adapter(torch::nn::Module& root, const std::filesystem::path& dir, const config::LoraArgs& args,
                  const std::string& base_model, const std::string& prefix) {
  auto tensors = adapter_tensors(root, prefix);
  for (const auto& [name, t] : tensors)
    if (!torch::isfinite(t).all().item<bool>())
      runtime_error("refusing to save adapter: tensor '{}' holds NaN or infinity", name);
  std::set<std::string> leaves;
  for (auto& [name, lin] : linears(root))
    if (lin->has_lora()) leaves.insert(leaf(name));
  std::filesystem::create_directories(dir);
  io::save_safetensors(dir / "adapter_model.safetensors", tensors);
  const auto cfg = adapter_config_json(args, base_model, std::vector<std::string>(leaves.begin(), leaves.end()));
  write_file_atomic(dir / "adapter_config.json", cfg.dump(2) + "\n");
}

config::LoraArgs load_adapter(torch::nn::Module& root, const std::filesystem::path& dir, const std::string& prefix) {
  const auto cfg_path = dir / "adapter_config.json";
  if (!std::filesystem::exists(cfg_path)) config_error("adapter folder '{}' has no adapter_config.json", dir.string());
  nlohmann::json j;
  try {
    j = parse_json(read_file(cfg_path));
  } catch (const nlohmann::json::exception& e) {   // parse_error, and out_of_range for a number like 1e999
    config_error("{}: invalid JSON: {}", cfg_path.string(), e.what());
  }
  config::LoraArgs args = lora_args_from_adapter_config(j, cfg_path.string());
  const auto st_path = dir / "adapter_model.safetensors";
  if (!std::filesystem::exists(st_path))
    config_error("adapter folder '{}' has no adapter_model.safetensors (the legacy adapter_model.bin is not read)", dir.string());
  io::SafeTensorsFile file(st_path);
  std::set<std::string> remaining;
  for (const auto& info : file.tensors()) remaining.insert(info.name);
  // The modules the file names are the ones to adapt (PEFT's target_modules may be a regex).
  std::vector<std::string> missing;
  const double scaling = lora_scaling(args.alpha, args.rank, args.use_rslora);
  torch::NoGradGuard guard;
  for (auto& [name, lin] : linears(root)) {
    const std::string a = peft_name(prefix + name, "lora_A"), b = peft_name(prefix + name, "lora_B");
    const bool has_a = file.contains(a), has_b = file.contains(b);
    if (!has_a && !has_b) continue;
    if (has_a != has_b) missing.push_back(has_a ? b : a);
    if (!has_a || !has_b) continue;
    const auto& ia = file.info(a);
    const auto& ib = file.info(b);
    // Exactly [r, in] and [out, r] with the config's r: never broadcast into the attached weights.
    const int64_t r = args.rank;
    if (ia.shape != std::vector<int64_t>{r, lin->in_features} || ib.shape != std::vector<int64_t>{lin->out_features, r})
      config_error("{}: adapter tensors of '{}' have shapes [{}] and [{}] but r {} and the layer [{}, {}] (out, in) need [{}, {}] and [{}, {}]",
                   st_path.string(), name, fmt::join(ia.shape, ", "), fmt::join(ib.shape, ", "), r, lin->out_features,
                   lin->in_features, r, lin->in_features, lin->out_features, r);
    if (lin->has_lora() && lin->lora_A->weight.size(0) != r)
      config_error("{}: adapter of '{}' has rank {} but the run's LoRA has rank {}", st_path.string(), name, r,
                   lin->lora_A->weight.size(0));
    if (!lin->has_lora()) lin->attach_lora(r, scaling, args.dropout);
    auto ta = file.load(a).to(torch::kFloat32), tb = file.load(b).to(torch::kFloat32);
    if (!torch::isfinite(ta).all().item<bool>() || !torch::isfinite(tb).all().item<bool>())
      config_error("{}: adapter tensors of '{}' hold NaN or infinity", st_path.string(), name);
    lin->lora_A->weight.copy_(ta);
    lin->lora_B->weight.copy_(tb);
    lin->lora_scaling = scaling;
    remaining.erase(a);
    remaining.erase(b);
  }
  if (!remaining.empty() || !missing.empty())
    config_error("{}: adapter does not fit the model: unexpected tensors [{}]; missing tensors [{}]", st_path.string(),
                 fmt::join(remaining, ", "), fmt::join(missing, ", "));
  return args;
}

void merge(torch::nn::Module& root) {
  torch::NoGradGuard guard;
  for (auto& [name, lin] : linears(root)) {
    if (!lin->has_lora()) continue;
    if (lin->quantized_base()) runtime_error("cannot merge LoRA into the 4-bit base of '{}': export dequantizes first", name);
    // PEFT merges in float32 and casts back to the weight's dtype.
    lin->weight.copy_((lin->weight.to(torch::kFloat32) + lin->lora_delta()).to(lin->weight.scalar_type()));
    lin->lora_B->weight.zero_();
    lin->lora_enabled = false;
  }
}

std::vector<std::pair<std::string, torch::Tensor>> trainable_parameters(torch::nn::Module& root) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& item : root.named_parameters())
    if (item.value().requires_grad()) out.emplace_back(item.key(), item.value());
  return out;
}

}  // namespace gym::lora
