#include "gym/data/sampler.h"

#include <random>

#include "gym/core/error.h"

namespace gym::data {

BatchSampler::BatchSampler(int64_t n, uint64_t seed, int64_t rank, int64_t world) : n_(n), seed_(seed), rank_(rank), world_(world) {
  if (n <= 0) runtime_error("no training examples");
  shuffle_epoch();
}

void BatchSampler::shuffle_epoch() {
  std::vector<int64_t> all(static_cast<size_t>(n_));
  for (int64_t i = 0; i < n_; ++i) all[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(seed_ + static_cast<uint64_t>(epoch_) * 1000003ULL);
  for (size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[rng() % i]);
  order_.clear();
  for (size_t i = static_cast<size_t>(rank_); i < all.size(); i += static_cast<size_t>(world_)) order_.push_back(all[i]);
  if (order_.empty()) order_.push_back(all[0]);
}

std::vector<int64_t> BatchSampler::next(int64_t batch_size) {
  std::vector<int64_t> out;
  while (static_cast<int64_t>(out.size()) < batch_size) {
    if (position_ >= static_cast<int64_t>(order_.size())) {
      ++epoch_;
      position_ = 0;
      shuffle_epoch();
    }
    out.push_back(order_[static_cast<size_t>(position_++)]);
  }
  return out;
}

double BatchSampler::epoch() const {
  return static_cast<double>(epoch_) + static_cast<double>(position_) / static_cast<double>(order_.size());
}

nlohmann::json BatchSampler::state() const { return {{"epoch", epoch_}, {"position", position_}, {"seed", seed_}}; }

void BatchSampler::restore(const nlohmann::json& s, const std::string& where) {
  if (!s.is_object()) config_error("{}: gym_data_state is missing or not an object (not a checkpoint gym wrote)", where);
  const auto field = [&](const char* key, int64_t max) {
    if (!s.contains(key) || !s[key].is_number_integer() || s[key].get<int64_t>() < 0 || s[key].get<int64_t>() > max)
      config_error("{}: gym_data_state.{} must be an integer in [0, {}], got {}", where, key, max,
                   s.contains(key) ? s[key].dump() : std::string("nothing"));
    return s[key].get<int64_t>();
  };
  epoch_ = field("epoch", int64_t{1} << 40);
  position_ = field("position", static_cast<int64_t>(order_.size()));   // more than the data set: another data set's checkpoint
  shuffle_epoch();
}

Batch collate(const std::vector<const SftExample*>& examples, int64_t pad_id, torch::Device device) {
  size_t t = 1;
  for (const auto* e : examples) t = std::max(t, e->input_ids.size());
  const auto b = static_cast<int64_t>(examples.size());
  Batch batch;
  batch.input_ids = torch::full({b, static_cast<int64_t>(t)}, pad_id, torch::kInt64);
  batch.labels = torch::full({b, static_cast<int64_t>(t)}, -100, torch::kInt64);
  batch.attention_mask = torch::zeros({b, static_cast<int64_t>(t)}, torch::kInt64);
  for (int64_t i = 0; i < b; ++i) {
    const auto& e = *examples[static_cast<size_t>(i)];
    const auto n = static_cast<int64_t>(e.input_ids.size());
    if (n == 0) continue;
    batch.input_ids[i].narrow(0, 0, n).copy_(torch::tensor(e.input_ids, torch::kInt64));
    batch.labels[i].narrow(0, 0, n).copy_(torch::tensor(e.labels, torch::kInt64));
    batch.attention_mask[i].narrow(0, 0, n).fill_(1);
    batch.num_tokens += n;
  }
  if (!device.is_cpu()) {
    batch.input_ids = batch.input_ids.to(device);
    batch.labels = batch.labels.to(device);
    batch.attention_mask = batch.attention_mask.to(device);
  }
  return batch;
}

}  // namespace gym::data
