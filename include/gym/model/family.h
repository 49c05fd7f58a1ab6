// Model families, keyed by config.json's model_type (ScaleLLM's model registry, llama.cpp's
// per-architecture tables). A new family is one file that returns a ModelFamily and one line in
// src/model/family.cpp.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "gym/model/causal_lm.h"

namespace gym::model {

struct ModelFamily {
  std::string model_type;
  // The whole config.json → ArchConfig; `source` names the file in errors.
  std::function<ArchConfig(const nlohmann::json& j, const std::string& source)> parse;
  // ArchConfig → config.json (keys of c.source_json that gym does not model are kept).
  std::function<nlohmann::json(const ArchConfig& c)> to_json;
  // A named shape (tiny | small | qwen-like) for create-model and the benches.
  std::function<ArchConfig(const std::string& preset)> preset;
  // Tensors a checkpoint of this family carries besides the text model (MTP heads, audio/vision
  // towers, talker): accepted by the loader, never read, copied unchanged by export.
  std::function<bool(const std::string& tensor_name)> foreign_tensor;
  std::function<CausalLM(const ArchConfig& c, torch::TensorOptions options)> build;
};

// The family of a model_type; an unknown one is a config error naming `source` and the known types.
const ModelFamily& model_family(const std::string& model_type, const std::string& source = "");
std::vector<std::string> model_family_names();

// A new model with uninitialised weights (no pages touched) in options' dtype.
CausalLM build_model(const ArchConfig& c, torch::TensorOptions options = {});

}  // namespace gym::model
