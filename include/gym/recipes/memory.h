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
  int64_t world = 1;               // data-parallel processes
  int64_t zero_stage = 0;          // DeepSpeed ZeRO stage (1: optimizer state / world, 2+: also gradients)
  double total() const { return weights_bytes + adapter_bytes + gradient_bytes + optimizer_bytes + activation_bytes; }
  std::string table() const;
};

// Per process for `world` data-parallel processes (ZeRO 1/2 shard the optimizer state and the
// gradients; stage 3 counts as 2: the frozen base stays replicated on every rank).
MemoryEstimate estimate_memory(const config::TrainConfig& c, const model::ArchConfig& arch, int64_t world = 1);

}  // namespace gym::recipes
