// Shared by the commands that load a model (score, generate, export).
#pragma once
#include <string>

#include "gym/model/causal_lm.h"

namespace gym::cli {

// Resolves the folder (local or HF cache), loads the base (4-bit checkpoints dequantized for
// inference), and applies --adapter when given.
model::CausalLM load_model_for_cli(const std::string& model, const std::string& adapter);

}  // namespace gym::cli
