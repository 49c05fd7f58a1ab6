// One process: every collective is the identity.
#include "gym/dist/comm.h"

namespace gym::dist {

torch::Tensor Communicator::reduce_scatter(const torch::Tensor& t) {
  // Default (Gloo has no reduce_scatter): sum everywhere, keep this rank's chunk.
  TORCH_CHECK(t.dim() == 1 && t.numel() % world() == 0, "reduce_scatter needs a flat tensor divisible by the world size");
  auto sum = t.contiguous().clone();
  all_reduce(sum);
  const int64_t n = t.numel() / world();
  return sum.narrow(0, rank() * n, n).clone();   // [n]
}

namespace {

class SingleProcess final : public Communicator {
 public:
  int64_t rank() const override { return 0; }
  int64_t world() const override { return 1; }
  int64_t local_rank() const override { return 0; }
  std::string backend() const override { return "single"; }
  void all_reduce(torch::Tensor&, ReduceOp) override {}
  torch::Tensor all_gather(const torch::Tensor& t) override { return t.clone(); }
  void broadcast(torch::Tensor&, int64_t) override {}
  void barrier() override {}
};

}  // namespace

std::shared_ptr<Communicator> make_single_process() { return std::make_shared<SingleProcess>(); }

}  // namespace gym::dist
