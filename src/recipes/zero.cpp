#include "recipes/zero.h"

#include <cmath>

#include "gym/core/error.h"

namespace gym::recipes {

ZeroShards::ZeroShards(std::vector<torch::Tensor> params, const std::vector<bool>& decay, std::shared_ptr<dist::Communicator> comm,
                       int64_t stage)
    : params_(std::move(params)), comm_(std::move(comm)), stage_(stage) {
  std::vector<torch::Tensor> mask;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].scalar_type() != torch::kFloat32)
      config_error("ZeRO stage {} shards float32 trainable parameters; {} is {}", stage, i, c10::toString(params_[i].scalar_type()));
    numel_ += params_[i].numel();
    mask.push_back(torch::full({params_[i].numel()}, decay[i] ? 1.0f : 0.0f, opts()));
  }
  const int64_t world = comm_->world();
  chunk_ = (numel_ + world - 1) / world;
  auto full_mask = torch::zeros({chunk_ * world}, opts());
  full_mask.narrow(0, 0, numel_).copy_(torch::cat(mask));
  decay_mask_ = full_mask.narrow(0, comm_->rank() * chunk_, chunk_).clone();
  exp_avg_ = torch::zeros({chunk_}, opts());
  exp_avg_sq_ = torch::zeros({chunk_}, opts());
}

// float32 on the parameters' device: the shards, moments and masks live where the model does.
torch::TensorOptions ZeroShards::opts() const {
  return torch::TensorOptions().dtype(torch::kFloat32).device(params_.empty() ? torch::Device(torch::kCPU) : params_.front().device());
}

torch::Tensor ZeroShards::flat_params() const {
  std::vector<torch::Tensor> parts;
  for (const auto& p : params_) parts.push_back(p.detach().reshape({-1}));
  parts.push_back(torch::zeros({chunk_ * comm_->world() - numel_}, opts()));
  return torch::cat(parts);   // [chunk · world]
}

double ZeroShards::reduce_gradients() {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> parts;
  for (const auto& p : params_) parts.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, opts()));
  parts.push_back(torch::zeros({chunk_ * comm_->world() - numel_}, opts()));
  auto flat = torch::cat(parts);   // [chunk · world]
  if (stage_ >= 2) {
    grad_ = comm_->reduce_scatter(flat);   // [chunk]
  } else {
    comm_->all_reduce(flat);
    grad_ = flat.narrow(0, comm_->rank() * chunk_, chunk_).clone();
  }
  return std::sqrt(dist::all_reduce_scalar(*comm_, grad_.to(torch::kFloat64).pow(2).sum().item<double>()));
}

void ZeroShards::step(double lr, double grad_scale, const config::TrainingArgs& a) {
  torch::NoGradGuard ng;
  auto p = flat_params().narrow(0, comm_->rank() * chunk_, chunk_).clone();   // [chunk]
  auto g = grad_scale != 1.0 ? grad_ * grad_scale : grad_;
  ++step_;
  // AdamW as torch::optim::AdamW, term for term (decoupled decay first).
  const double factor = 1.0 - lr * a.weight_decay;
  p.mul_(torch::where(decay_mask_ > 0, torch::full({chunk_}, factor, opts()), torch::ones({chunk_}, opts())));
  exp_avg_.mul_(a.adam_beta1).add_(g, 1 - a.adam_beta1);
  exp_avg_sq_.mul_(a.adam_beta2).addcmul_(g, g, 1 - a.adam_beta2);
  const double bias1 = 1 - std::pow(a.adam_beta1, static_cast<double>(step_));
  const double bias2 = 1 - std::pow(a.adam_beta2, static_cast<double>(step_));
  auto denom = (exp_avg_sq_.sqrt() / std::sqrt(bias2)).add_(a.adam_epsilon);
  p.addcdiv_(exp_avg_, denom, -lr / bias1);
  auto all = comm_->all_gather(p);   // [chunk · world]
  int64_t off = 0;
  for (auto& q : params_) {
    q.detach().copy_(all.narrow(0, off, q.numel()).view(q.sizes()));
    off += q.numel();
  }
}

std::vector<torch::Tensor> ZeroShards::gather_state() {
  auto m = comm_->all_gather(exp_avg_).narrow(0, 0, numel_).clone();
  auto v = comm_->all_gather(exp_avg_sq_).narrow(0, 0, numel_).clone();
  return {m, v, torch::tensor(step_)};
}

void ZeroShards::load_state(const torch::Tensor& m, const torch::Tensor& v, int64_t step) {
  if (m.numel() != numel_ || v.numel() != numel_)
    config_error("ZeRO optimizer state has {} values, the trainable parameters {}", m.numel(), numel_);
  auto pad = [&](const torch::Tensor& t) {
    auto full = torch::zeros({chunk_ * comm_->world()}, opts());
    full.narrow(0, 0, numel_).copy_(t.reshape({-1}));
    return full.narrow(0, comm_->rank() * chunk_, chunk_).clone();
  };
  exp_avg_ = pad(m);
  exp_avg_sq_ = pad(v);
  step_ = step;
}

}  // namespace gym::recipes
