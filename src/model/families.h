// The families gym knows, one file each (private to model/; the table is in family.cpp).
#pragma once
#include "gym/model/family.h"

namespace gym::model {

ModelFamily qwen3_family();        // qwen3.cpp
ModelFamily qwen3_moe_family();    // qwen3.cpp
ModelFamily qwen3_next_family();   // qwen3_next.cpp
ModelFamily qwen3_omni_family();   // qwen3_omni.cpp

// The decoder stack every family above builds (decoder.cpp).
CausalLM build_decoder(const ArchConfig& c, torch::TensorOptions options);

// Tiny / small / qwen-like dimensions shared by the presets.
void apply_dense_preset(ArchConfig& c, const std::string& preset);

}  // namespace gym::model
