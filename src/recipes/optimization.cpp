#include "gym/recipes/optimization.h"

#include <fmt/ranges.h>

#include <spdlog/spdlog.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/serialize.h>

#include <cmath>
#include <type_traits>
#include <fstream>
#include <sstream>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/recipes/schedule.h"
#include "recipes/zero.h"

namespace gym::recipes {

Optimization::Optimization(const std::vector<std::pair<std::string, torch::Tensor>>& named_params,
                           const config::TrainingArgs& args, int64_t total_steps)
    : args_(args), total_steps_(total_steps),
      warmup_(warmup_steps_for(total_steps, args.warmup_steps, args.warmup_ratio)) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& [name, p] : named_params) {
    params_.push_back(p);
    // As HF Trainer: no weight decay on biases and normalisation weights.
    const bool exempt = name.find("norm") != std::string::npos || name.find("bias") != std::string::npos;
    decay_.push_back(!exempt);
    (exempt ? no_decay : decay).push_back(p);
  }
  if (params_.empty()) runtime_error("nothing to train: no parameter requires a gradient");
  auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(args.learning_rate)
            .betas({args.adam_beta1, args.adam_beta2})
            .eps(args.adam_epsilon)
            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty()) groups.emplace_back(decay, options(args.weight_decay));
  if (!no_decay.empty()) groups.emplace_back(no_decay, options(0.0));
  adamw_ = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(args.learning_rate));
}

Optimization::~Optimization() = default;

void Optimization::distribute(std::shared_ptr<dist::Communicator> comm, int64_t zero_stage) {
  comm_ = std::move(comm);
  if (comm_->world() > 1 && zero_stage >= 1) {
    zero_ = std::make_unique<ZeroShards>(params_, decay_, comm_, std::min<int64_t>(zero_stage, 2));
    spdlog::info("ZeRO stage {}: AdamW state of {} trainable values sharded over {} ranks ({} each)", std::min<int64_t>(zero_stage, 2),
                 zero_->numel(), comm_->world(), (zero_->numel() + comm_->world() - 1) / comm_->world());
  }
}

void Optimization::prepare_save() {
  if (zero_) zero_saved_ = zero_->gather_state();
}

double Optimization::lr_at(int64_t step) const {
  return learning_rate_at(args_.lr_scheduler_type, args_.learning_rate, step, total_steps_, warmup_);
}

StepOutcome Optimization::step(int64_t step, double loss) {
  StepOutcome out;
  out.lr = lr_at(step);
  // Gradients summed over ranks, then the norm over every gradient (HF logs the pre-clip norm).
  if (zero_) {
    out.grad_norm = zero_->reduce_gradients();
  } else {
    if (comm_) dist::all_reduce_gradients(*comm_, params_);
    double sq = 0.0;
    for (const auto& p : params_)
      if (p.grad().defined()) sq += p.grad().detach().to(torch::kFloat64).pow(2).sum().item<double>();
    out.grad_norm = std::sqrt(sq);
  }
  if (!std::isfinite(loss) || !std::isfinite(out.grad_norm)) {
    ++consecutive_nonfinite_;
    ++skipped_;
    clear_gradients();
    out.applied = false;
    spdlog::warn("step {}: non-finite {} — step skipped ({} in a row, {} in total)", step + 1,
                 std::isfinite(loss) ? "gradient" : "loss", consecutive_nonfinite_, skipped_);
    if (consecutive_nonfinite_ >= args_.max_nonfinite_steps)
      runtime_error("stopping: {} consecutive steps had a non-finite loss or gradient (last at step {}); lower learning_rate, "
                    "check the data, or use float32 instead of bf16",
                    consecutive_nonfinite_, step + 1);
    return out;
  }
  consecutive_nonfinite_ = 0;
  if (zero_) {
    const bool clip = args_.max_grad_norm > 0 && out.grad_norm > args_.max_grad_norm;
    zero_->step(out.lr, clip ? args_.max_grad_norm / (out.grad_norm + 1e-6) : 1.0, args_);
    clear_gradients();   // ZeroShards reads a missing gradient as zeros
    return out;
  }
  if (args_.max_grad_norm > 0 && out.grad_norm > args_.max_grad_norm) {
    const double scale = args_.max_grad_norm / (out.grad_norm + 1e-6);
    torch::NoGradGuard guard;
    for (auto& p : params_)
      if (p.grad().defined()) p.grad().mul_(scale);
  }
  for (auto& group : adamw_->param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(out.lr);
  adamw_->step();
  clear_gradients();
  return out;
}

// Gradients are unset after a step (PyTorch 2's zero_grad(set_to_none=True), which HF's Trainer
// uses), on LibTorch 1.13 as on 2.x, whose zero_grad() defaults differ. A parameter that gets no
// gradient in a step (an MoE expert no token was routed to) is then skipped by AdamW, as in
// PyTorch, instead of moving on its momentum.
void Optimization::clear_gradients() {
  for (auto& p : params_) p.mutable_grad() = torch::Tensor();
}

void Optimization::save(const std::filesystem::path& dir) const {
  torch::serialize::OutputArchive archive;
  if (zero_) {   // the gathered full moments (prepare_save), loadable with any number of ranks
    if (zero_saved_.size() != 3) runtime_error("internal: a ZeRO optimizer is saved without prepare_save()");
    archive.write("zero_exp_avg", zero_saved_[0]);
    archive.write("zero_exp_avg_sq", zero_saved_[1]);
    archive.write("zero_step", zero_saved_[2]);
  } else {
    adamw_->save(archive);
  }
  archive.write("gym_skipped_steps", torch::tensor(skipped_));
  archive.write("gym_consecutive_nonfinite", torch::tensor(consecutive_nonfinite_));
  save_archive(archive, dir / "optimizer.pt");
}

void save_archive(torch::serialize::OutputArchive& archive, const std::filesystem::path& path) {
  write_file_atomic_stream(path, [&](const WriteChunk& write) {
    // Always "written": after a failed write the rest is dropped and write_file_atomic_stream
    // reports the OS reason. A short count would make LibTorch throw, and its writer's destructor
    // throws again while unwinding (std::terminate).
    archive.save_to([&](const void* data, size_t n) -> size_t {
      write(data, n);
      return n;
    });
  });
}

namespace {
// torch::optim keys a parameter's state by its TensorImpl: as a string in LibTorch 1.13, as the
// pointer in 2.x.
template <typename Key>
Key state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;   // what c10::guts::to_string (1.13) writes: the pointer as text
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}
}  // namespace

void Optimization::load(const std::filesystem::path& dir) {
  const auto path = dir / "optimizer.pt";
  if (!std::filesystem::exists(path)) config_error("checkpoint '{}' has no optimizer.pt", dir.string());
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path.string());
    torch::Tensor m, v, zstep;
    const bool zero_ckpt = archive.try_read("zero_exp_avg", m);
    if (zero_ckpt != static_cast<bool>(zero_))
      config_error("checkpoint '{}' was written {} ZeRO stage 1/2 but this run uses {}: resume with the same deepspeed setting",
                   dir.string(), zero_ckpt ? "with" : "without", zero_ ? "it" : "none");
    if (zero_) {
      archive.read("zero_exp_avg_sq", v);
      archive.read("zero_step", zstep);
      zero_->load_state(m, v, zstep.item<int64_t>());
    } else {
      adamw_->load(archive);
      // LibTorch restores the states by position: another run's (a different LoRA rank) would
      // only fail at the first step, with a shape message that names nothing.
      for (const auto& group : adamw_->param_groups())
        for (const auto& p : group.params()) {
          const auto it = adamw_->state().find(state_key<typename std::decay_t<decltype(adamw_->state())>::key_type>(p));
          if (it == adamw_->state().end()) continue;
          const auto& st = static_cast<const torch::optim::AdamWParamState&>(*it->second);
          if (st.exp_avg().sizes() != p.sizes() || st.exp_avg_sq().sizes() != p.sizes())
            config_error("{}: an AdamW state of shape [{}] for a parameter of shape [{}]: the checkpoint is of another run",
                         path.string(), fmt::join(st.exp_avg().sizes(), ", "), fmt::join(p.sizes(), ", "));
        }
    }
  } catch (const c10::Error& e) {
    config_error("{}: unreadable, truncated or from another run ({})", path.string(),
                 std::string(e.what_without_backtrace()).substr(0, 160));
  }
  torch::Tensor t;
  if (archive.try_read("gym_skipped_steps", t)) skipped_ = t.item<int64_t>();
  if (archive.try_read("gym_consecutive_nonfinite", t)) consecutive_nonfinite_ = t.item<int64_t>();
}

}  // namespace gym::recipes
