// A seeded, resumable stream of example indices (shuffled per epoch, sharded by rank) and the
// collate function producing padded tensors.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <string>
#include <vector>

#include "gym/data/dataset.h"

namespace gym::data {

class BatchSampler {
 public:
  BatchSampler(int64_t num_examples, uint64_t seed, int64_t rank = 0, int64_t world = 1);
  std::vector<int64_t> next(int64_t batch_size);   // crosses epoch boundaries
  double epoch() const;                             // fractional epochs consumed
  int64_t examples_per_epoch() const { return static_cast<int64_t>(order_.size()); }
  nlohmann::json state() const;
  // A config error naming `where` (the trainer_state.json) when the state is not one state() wrote
  // for a data set of this size.
  void restore(const nlohmann::json& state, const std::string& where);

 private:
  void shuffle_epoch();
  int64_t n_;
  uint64_t seed_;
  int64_t rank_, world_;
  int64_t epoch_ = 0, position_ = 0;
  std::vector<int64_t> order_;
};

struct Batch {
  torch::Tensor input_ids;        // [B, T] right-padded with pad_id
  torch::Tensor labels;           // [B, T] -100 on padding and untrained tokens
  torch::Tensor attention_mask;   // [B, T]
  int64_t num_tokens = 0;         // unpadded tokens
};
// Padded on the CPU, then moved to `device` once (a no-op for the CPU).
Batch collate(const std::vector<const SftExample*>& examples, int64_t pad_id, torch::Device device = torch::kCPU);

}  // namespace gym::data
