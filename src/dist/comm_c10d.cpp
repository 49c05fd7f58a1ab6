// The c10d communicator: TCPStore rendezvous + ProcessGroupGloo (CPU) or ProcessGroupNCCL (a CUDA
// build that defines USE_C10D_NCCL). The C++ frontend has no DDP: gym reduces gradients itself.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO   // Debian's libtorch_cpu.so carries ProcessGroupGloo; its header is guarded by this
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>

#include "gym/core/error.h"
#include "gym/dist/comm.h"

namespace gym::dist {

namespace {

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::Max: return c10d::ReduceOp(c10d::ReduceOp::MAX);
    case ReduceOp::Min: return c10d::ReduceOp(c10d::ReduceOp::MIN);
    default: return c10d::ReduceOp(c10d::ReduceOp::SUM);
  }
}

// An exception's first line; for a c10::Error without the backtrace LibTorch 2.x appends to what().
std::string reason(const std::exception& e) {
  const auto* ce = dynamic_cast<const c10::Error*>(&e);
  std::string msg = ce ? ce->what_without_backtrace() : e.what();
  if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
  return msg;
}

// LibTorch >= 2.4 defaults TCPStoreOptions::useLibUV to true and throws when it was built without
// libuv (Debian's 2.6 is); the classic socket store is what 1.13 uses, so it is asked for wherever the
// option exists. Overload resolution picks the first version only when the member is there.
template <class O>
auto use_socket_store(O& o, int) -> decltype(o.useLibUV = false, void()) { o.useLibUV = false; }
template <class O>
void use_socket_store(O&, long) {}

std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& master_addr) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  // One machine: stay on the loopback interface (tests and --nproc_per_node bind 127.0.0.1 only).
  if (master_addr == "127.0.0.1" || master_addr == "localhost") return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

class C10dCommunicator final : public Communicator {
 public:
  C10dCommunicator(const LaunchEnv& env, const C10dOptions& opts) : env_(env), backend_(opts.backend), timeout_(opts.timeout) {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = static_cast<std::size_t>(env.world);
    so.timeout = opts.timeout;
    use_socket_store(so, 0);
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    } catch (const std::exception& e) {
      runtime_error("rank {}: rendezvous at {}:{} failed ({} processes expected): {}", env.rank, env.master_addr, env.master_port,
                    env.world, reason(e));
    }
    if (backend_ == "gloo") {
      auto go = c10d::ProcessGroupGloo::Options::create(opts.timeout);
      go->devices.push_back(gloo_device(env.master_addr));
      go->threads = 1;
      gloo_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, static_cast<int>(env.rank), static_cast<int>(env.world), go);
    } else if (backend_ == "nccl") {
#ifdef USE_C10D_NCCL
      auto no = c10d::ProcessGroupNCCL::Options::create();
      no->timeout = opts.timeout;
      nccl_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, static_cast<int>(env.rank), static_cast<int>(env.world), no);
      device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
#else
      config_error("ddp_backend nccl: this gym build has no ProcessGroupNCCL (a CPU build); use ddp_backend gloo");
#endif
    } else {
      config_error("unknown ddp_backend '{}' (gloo or nccl)", backend_);
    }
  }

  int64_t rank() const override { return env_.rank; }
  int64_t world() const override { return env_.world; }
  int64_t local_rank() const override { return env_.local_rank; }
  std::string backend() const override { return backend_; }

  // Every collective stages its tensor on the group's device (CPU for Gloo, cuda:LOCAL_RANK for
  // NCCL) and copies the result back, so callers pass tensors from any device: a CPU scalar or RNG
  // state through NCCL, a CUDA gradient bucket through Gloo.
  void all_reduce(torch::Tensor& t, ReduceOp op) override {
    std::vector<at::Tensor> v{staged(t)};
    c10d::AllreduceOptions o;
    o.reduceOp = to_c10d(op);
    finish(with_group([&](auto& pg) { return pg.allreduce(v, o); }), "all_reduce");
    if (!v[0].is_same(t)) t.copy_(v[0]);
  }

  torch::Tensor all_gather(const torch::Tensor& t) override {
    std::vector<at::Tensor> in{staged(t)};
    std::vector<std::vector<at::Tensor>> out(1);
    for (int64_t r = 0; r < env_.world; ++r) out[0].push_back(torch::empty_like(in[0]));
    finish(with_group([&](auto& pg) { return pg.allgather(out, in); }), "all_gather");
    return torch::cat(out[0], 0).to(t.device());   // [world·n, ...]
  }

  void broadcast(torch::Tensor& t, int64_t root) override {
    std::vector<at::Tensor> v{staged(t)};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    finish(with_group([&](auto& pg) { return pg.broadcast(v, o); }), "broadcast");
    if (!v[0].is_same(t)) t.copy_(v[0]);
  }

  void barrier() override {
    finish(with_group([&](auto& pg) { return pg.barrier(); }), "barrier");
  }

 private:
  // t itself when it is contiguous and on the group's device, else a contiguous copy there.
  torch::Tensor staged(const torch::Tensor& t) const {
    if (t.device() == device_ && t.is_contiguous()) return t;
    return t.to(device_).contiguous();
  }

  // The group in use. LibTorch 1.13's process groups derive from c10d::ProcessGroup, 2.x's from
  // c10d::Backend: the concrete classes are held, so the same calls compile against both.
  template <class F>
  c10::intrusive_ptr<c10d::Work> with_group(F&& f) {
#ifdef USE_C10D_NCCL
    if (nccl_) return f(*nccl_);
#endif
    return f(*gloo_);
  }

  void finish(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    try {
      work->wait(timeout_);
    } catch (const std::exception& e) {
      runtime_error("rank {}: {} over {} failed (a peer died or ddp_timeout {} s passed): {}", env_.rank, what, backend_,
                    timeout_.count() / 1000, reason(e));
    }
  }

  LaunchEnv env_;
  std::string backend_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  torch::Device device_ = torch::kCPU;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo_;
#ifdef USE_C10D_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl_;
#endif
};

}  // namespace

std::shared_ptr<Communicator> make_c10d(const LaunchEnv& env, const C10dOptions& opts) {
  return std::make_shared<C10dCommunicator>(env, opts);
}

bool nccl_compiled() {
#ifdef USE_C10D_NCCL
  return true;
#else
  return false;
#endif
}

}  // namespace gym::dist
