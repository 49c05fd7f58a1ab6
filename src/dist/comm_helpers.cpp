// Small collectives built on the Communicator interface.
#include <algorithm>
#include <cstring>

#include "gym/dist/comm.h"

namespace gym::dist {

double all_reduce_scalar(Communicator& comm, double value, ReduceOp op) { return all_reduce_values(comm, {value}, op)[0]; }

std::vector<double> all_reduce_values(Communicator& comm, std::vector<double> values, ReduceOp op) {
  if (comm.world() == 1 || values.empty()) return values;
  auto t = torch::tensor(values, torch::kFloat64);   // [n]
  comm.all_reduce(t, op);
  std::memcpy(values.data(), t.data_ptr<double>(), values.size() * sizeof(double));
  return values;
}

std::string broadcast_string(Communicator& comm, const std::string& s, int64_t root) {
  if (comm.world() == 1) return s;
  auto len = torch::tensor({static_cast<int64_t>(s.size())}, torch::kInt64);
  comm.broadcast(len, root);
  auto bytes = torch::zeros({std::max<int64_t>(1, len.item<int64_t>())}, torch::kUInt8);
  if (comm.rank() == root && !s.empty()) std::memcpy(bytes.data_ptr<uint8_t>(), s.data(), s.size());
  comm.broadcast(bytes, root);
  return std::string(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), static_cast<size_t>(len.item<int64_t>()));
}

std::string concat_in_rank_order(Communicator& comm, const std::string& s) {
  if (comm.world() == 1) return s;
  std::string all;
  for (int64_t r = 0; r < comm.world(); ++r) all += broadcast_string(comm, comm.rank() == r ? s : "", r);
  return all;
}

void all_reduce_gradients(Communicator& comm, const std::vector<torch::Tensor>& params) {
  if (comm.world() == 1) return;
  torch::NoGradGuard ng;
  // One bucket per dtype, in parameter order, then one "has a gradient" flag per parameter (their
  // sum counts the ranks that had one, exact in any float type up to 256 ranks). A gradient missing
  // on this rank counts as zeros; one missing on every rank stays unset, as DDP leaves it, so the
  // optimizer skips that parameter exactly as a single process would.
  std::vector<torch::ScalarType> dtypes;
  for (const auto& p : params)
    if (std::find(dtypes.begin(), dtypes.end(), p.scalar_type()) == dtypes.end()) dtypes.push_back(p.scalar_type());
  for (auto dt : dtypes) {
    std::vector<torch::Tensor> parts;
    std::vector<float> has;
    for (const auto& p : params) {
      if (p.scalar_type() != dt) continue;
      parts.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, p.options()));
      has.push_back(p.grad().defined() ? 1.0F : 0.0F);
    }
    const auto n_has = static_cast<int64_t>(has.size());
    parts.push_back(torch::tensor(has).to(parts.front().options()));
    auto flat = torch::cat(parts);   // [Σ numel + number of parameters]
    comm.all_reduce(flat);
    const auto ranks_with = flat.narrow(0, flat.numel() - n_has, n_has).to(torch::kCPU, torch::kFloat32);   // [parameters]
    const auto with = ranks_with.accessor<float, 1>();
    int64_t off = 0, i = 0;
    for (const auto& p : params) {
      if (p.scalar_type() != dt) continue;
      auto g = flat.narrow(0, off, p.numel()).view(p.sizes());
      if (p.grad().defined()) p.mutable_grad().copy_(g);
      else if (with[i] > 0) p.mutable_grad() = g.clone();
      off += p.numel();
      ++i;
    }
  }
}

}  // namespace gym::dist
