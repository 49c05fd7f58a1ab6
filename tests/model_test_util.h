// Helpers for model tests: JSON → tensors, loading reference folders.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>
#include <optional>

#include "gym/core/error.h"
#include "gym/model/loader.h"

namespace gym::test {

inline torch::Tensor to_tensor_2d(const nlohmann::json& j) {
  std::vector<int64_t> flat;
  for (const auto& row : j)
    for (const auto& v : row) flat.push_back(v.get<int64_t>());
  return torch::tensor(flat, torch::kInt64).view({static_cast<int64_t>(j.size()), -1});
}

inline torch::Tensor to_tensor_2d_f(const nlohmann::json& j) {
  std::vector<float> flat;
  for (const auto& row : j)
    for (const auto& v : row) flat.push_back(v.get<float>());
  return torch::tensor(flat).view({static_cast<int64_t>(j.size()), -1});
}

inline torch::Tensor to_tensor_3d(const nlohmann::json& j) {
  std::vector<float> flat;
  const int64_t a = static_cast<int64_t>(j.size()), b = static_cast<int64_t>(j[0].size());
  for (const auto& x : j)
    for (const auto& y : x)
      for (const auto& v : y) flat.push_back(v.get<float>());
  return torch::tensor(flat).view({a, b, -1});
}

// The model of a reference folder in float32. A folder gym cannot load fails the test (every
// family of the references is supported).
// A reference.json's inputs: input_ids [B, T] and the forward options (attention_mask, position_ids).
struct ReferenceInputs {
  torch::Tensor ids, mask;
  model::ForwardOptions options;
};
inline ReferenceInputs reference_inputs(const nlohmann::json& ref) {
  ReferenceInputs in;
  in.ids = to_tensor_2d(ref["input_ids"]);
  in.mask = to_tensor_2d(ref["attention_mask"]);
  in.options.attention_mask = in.mask;
  if (ref.contains("position_ids")) in.options.position_ids = to_tensor_2d(ref["position_ids"]);
  return in;
}

inline model::CausalLM load_reference_model(const std::filesystem::path& dir, torch::Dtype dtype = torch::kFloat32) {
  // A LoRA reference folder may hold only the adapter; its base is the dense folder beside it.
  if (!std::filesystem::exists(dir / "model.safetensors") && !std::filesystem::exists(dir / "model.safetensors.index.json"))
    for (const auto& e : std::filesystem::directory_iterator(dir.parent_path()))
      if (e.is_directory() && std::filesystem::exists(e.path() / "model.safetensors") && !std::filesystem::exists(e.path() / "adapter_config.json"))
        return model::load_model(e.path(), dtype);
  return model::load_model(dir, dtype);
}

}  // namespace gym::test
