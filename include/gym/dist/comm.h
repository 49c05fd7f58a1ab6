// The process seam: one small communicator (rank, world, collectives) with a single-process
// implementation and a c10d one (ProcessGroupGloo on CPU; ProcessGroupNCCL in a CUDA build).
// Every rank must issue the same collectives in the same order, with tensors of equal shape.
#pragma once
#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gym/dist/env.h"

namespace gym::dist {

enum class ReduceOp { Sum, Max, Min };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t world() const = 0;
  virtual int64_t local_rank() const = 0;
  virtual std::string backend() const = 0;   // "single", "gloo", "nccl"
  // In place over all ranks. t: any shape, contiguous.
  virtual void all_reduce(torch::Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  // t: [n, ...] equal on every rank → [world·n, ...] in rank order.
  virtual torch::Tensor all_gather(const torch::Tensor& t) = 0;
  // In place: every rank gets root's t (equal shape and dtype on every rank).
  virtual void broadcast(torch::Tensor& t, int64_t root = 0) = 0;
  virtual void barrier() = 0;
  // t: [world·n] flat → this rank's [n] chunk of the sum over ranks (ZeRO's gradient partition).
  // Gloo has no reduce_scatter: the c10d implementation emulates it (all-reduce, keep a chunk).
  virtual torch::Tensor reduce_scatter(const torch::Tensor& t);
  bool is_main() const { return rank() == 0; }
};

std::shared_ptr<Communicator> make_single_process();

struct C10dOptions {
  std::string backend = "gloo";                  // gloo | nccl (nccl only in a build with USE_C10D_NCCL)
  std::chrono::milliseconds timeout{1800 * 1000};   // rendezvous and every collective
};
// Rendezvous over a TCPStore at env.master_addr:env.master_port (rank 0 hosts it).
std::shared_ptr<Communicator> make_c10d(const LaunchEnv& env, const C10dOptions& opts);
bool nccl_compiled();   // whether this build has ProcessGroupNCCL

// Helpers on top of the interface.
double all_reduce_scalar(Communicator& comm, double value, ReduceOp op = ReduceOp::Sum);
std::vector<double> all_reduce_values(Communicator& comm, std::vector<double> values, ReduceOp op = ReduceOp::Sum);
std::string broadcast_string(Communicator& comm, const std::string& s, int64_t root = 0);
// Every rank's string, concatenated in rank order, on every rank.
std::string concat_in_rank_order(Communicator& comm, const std::string& s);
// Sums the gradients of params over ranks in one flat float32/float64 bucket (per dtype), in place.
void all_reduce_gradients(Communicator& comm, const std::vector<torch::Tensor>& params);

}  // namespace gym::dist
