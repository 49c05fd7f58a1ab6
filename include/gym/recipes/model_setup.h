// The model side of `gym train`: resolve (or create) the base, load it, quantize, attach LoRA.
#pragma once
#include <filesystem>
#include <string>

#include "gym/config/config.h"
#include "gym/model/causal_lm.h"
#include "gym/tokenizer/tokenizer.h"

namespace gym::recipes {

struct TrainModel {
  model::CausalLM model;
  tokenizer::Tokenizer tokenizer;
  std::filesystem::path model_dir;
  std::string base_name;        // as written in adapter_config.json
  torch::Dtype dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;   // the model's; batches move here once each
  bool lora = true;
  config::LoraArgs lora_args;   // the run's LoRA settings (a resumed checkpoint must have the same)
};

// The folder of model_name_or_path; with create_model_preset a missing model is created first
// (a bare name lives in gym's cache: <cache>/models/<name>).
std::filesystem::path resolve_or_create_model(const config::ModelArgs& args);

// Loads (and quantizes) the base, moves it to `device` (weights, NF4 buffers), then attaches LoRA
// there: every trainable parameter, and so the optimizer state, lives on the device.
TrainModel setup_model(const config::TrainConfig& c, torch::Device device = torch::kCPU);

// Writes the trained weights: the adapter (LoRA) or the full model, into dir.
void save_trained(TrainModel& tm, const config::TrainConfig& c, const std::filesystem::path& dir);
// Reads them back from a checkpoint folder written by save_trained.
void load_trained(TrainModel& tm, const std::filesystem::path& dir);

}  // namespace gym::recipes
