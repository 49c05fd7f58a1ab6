// The memory a training config will need, estimated from the base model's config.json (the
// table users otherwise guess from docs): weights, adapters, optimizer state, activations.
#pragma once
#include <string>

#include "gym/config/config.h"
#include "gym/model/config.h"

namespace gym::recipes {

struct MemoryEstimate {
  double weights_bytes = 0;        // the base as stored (4-bit linears counted at their bits/param)
  double quantized_params = 0;     // parameters stored in 4 bits
  double bits_per_quantized_param = 0;
  double trainable_params = 0;
  double adapter_bytes = 0;        // trainable weights (fp32)
  double gradient_bytes = 0;
  double optimizer_bytes = 0;      // AdamW: two fp32 moments per trainable parameter
  double activation_bytes = 0;     // one micro-batch of cutoff_len (or prompt + completion) tokens
  double total() const { return weights_bytes + adapter_bytes + gradient_bytes + optimizer_bytes + activation_bytes; }
  std::string table() const;
};

MemoryEstimate estimate_memory(const config::TrainConfig& c, const model::ArchConfig& arch);

}  // namespace gym::recipes
