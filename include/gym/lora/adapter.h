// LoRA adapters on a module tree of gym::nn::Linear layers, in PEFT's format.
#pragma once
#include <torch/nn/module.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gym/config/config.h"

namespace gym::lora {

// Attaches adapters to every Linear whose name matches args.target and freezes every base
// parameter. Returns the adapted module names. Throws when nothing matches.
std::vector<std::string> inject(torch::nn::Module& root, const config::LoraArgs& args);

// Switches every adapter off (the base / reference policy) or on, in place.
void set_enabled(torch::nn::Module& root, bool enabled);

// RAII: adapters off for a scope (reference log-probs for the KL term).
class AdaptersDisabled {
 public:
  explicit AdaptersDisabled(torch::nn::Module& root) : root_(root) { set_enabled(root_, false); }
  ~AdaptersDisabled() { set_enabled(root_, true); }

 private:
  torch::nn::Module& root_;
};

// LoRA tensors under PEFT's names: base_model.model.<prefix><module>.lora_A.weight [r, in],
// lora_B [out, r]. `prefix` is the model's place inside its checkpoint ("thinker." for the Omni
// thinker), so adapters carry the names PEFT gives them on the full model.
std::map<std::string, torch::Tensor> adapter_tensors(torch::nn::Module& root, const std::string& prefix = "");

// adapter_config.json + adapter_model.safetensors (atomically, each file).
void save_adapter(torch::nn::Module& root, const std::filesystem::path& dir, const config::LoraArgs& args,
                  const std::string& base_model, const std::string& prefix = "");

// Reads a PEFT adapter folder, injects matching adapters and loads them; names and shapes are
// checked (one error listing what is missing or unexpected). Returns the adapter's settings.
config::LoraArgs load_adapter(torch::nn::Module& root, const std::filesystem::path& dir, const std::string& prefix = "");

// W ← W + B·A·scaling for every adapted linear; the adapters are then removed.
void merge(torch::nn::Module& root);

// Parameters that require gradients, with their names (LoRA factors, or everything for full FT).
std::vector<std::pair<std::string, torch::Tensor>> trainable_parameters(torch::nn::Module& root);

}  // namespace gym::lora
