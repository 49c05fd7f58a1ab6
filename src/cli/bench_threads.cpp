// gym bench threads: measures the thread settings gym chooses against the alternatives, on the
// kinds of work training does (big matmuls, a LoRA MLP forward+backward, elementwise softmax).
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <thread>

#include "cli/bench.h"
#include "gym/core/threads.h"

namespace gym::cli {

namespace {

using Clock = std::chrono::steady_clock;

// OpenBLAS exposes its pool size at run time; absent with other BLAS libraries.
void set_blas_threads(int n) {
  using Fn = void (*)(int);
  if (auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(n);
}

template <typename F>
double median_seconds(F&& f, int reps) {
  f();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto s = Clock::now();
    f();
    t.push_back(std::chrono::duration<double>(Clock::now() - s).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Workloads {
  torch::Tensor a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});
  torch::Tensor x = torch::randn({1024, 512});
  torch::Tensor w1 = torch::randn({1536, 512}) * 0.02, w2 = torch::randn({512, 1536}) * 0.02;
  torch::Tensor la = (torch::randn({8, 512}) * 0.02).requires_grad_(), lb = torch::zeros({1536, 8}).requires_grad_();
  torch::Tensor scores = torch::randn({8, 8, 128, 128});

  double matmul() { return median_seconds([&] { (void)torch::mm(a, b); }, 5); }
  double lora_mlp() {
    return median_seconds([&] {
      auto h = torch::nn::functional::linear(x, w1) + torch::mm(torch::mm(x, la.t()), lb.t()) * 2.0;
      auto y = torch::nn::functional::linear(torch::silu(h) * h, w2);
      y.pow(2).mean().backward();
    }, 5);
  }
  double softmax() { return median_seconds([&] { (void)torch::softmax(scores * 0.125 + 1.0, -1); }, 5); }
};

}  // namespace

void add_bench_threads(CLI::App& bench) {
  auto* cmd = bench.add_subcommand("threads", "Compare LibTorch intra-op / OpenBLAS thread settings on training-like work");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print one JSON object");
  cmd->callback([json] {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    const ThreadSettings chosen = configure_threads();
    torch::NoGradGuard* none = nullptr;
    (void)none;
    Workloads w;
    nlohmann::json rows = nlohmann::json::array();
    std::vector<std::pair<int, int>> settings = {{1, cores}, {cores, cores}, {1, 1}, {cores, 1}};
    for (auto [intra, blas] : settings) {
      at::set_num_threads(intra);
      set_blas_threads(blas);
      const double mm = w.matmul(), mlp = w.lora_mlp(), sm = w.softmax();
      rows.push_back({{"torch_intra_op", intra}, {"blas", blas}, {"matmul_gflops", 2.0 * 1024 * 1024 * 1024 / mm / 1e9},
                      {"lora_mlp_ms", mlp * 1e3}, {"softmax_ms", sm * 1e3}});
    }
    at::set_num_threads(chosen.torch_intra_op);
    set_blas_threads(cores);
    const double base = rows[0]["lora_mlp_ms"].get<double>();
    for (auto& r : rows) r["lora_mlp_vs_gym_choice"] = r["lora_mlp_ms"].get<double>() / base;
    nlohmann::json out = {{"cores", cores}, {"gym_choice", chosen.describe()}, {"settings", rows}};
    if (*json) {
      std::cout << out.dump() << "\n";
      return;
    }
    std::cout << fmt::format("cores {}, gym's choice: {}\n", cores, chosen.describe());
    std::cout << fmt::format("{:>10} {:>6} {:>14} {:>14} {:>12} {:>10}\n", "intra-op", "blas", "matmul GFLOP/s", "LoRA MLP ms",
                             "softmax ms", "MLP ratio");
    for (const auto& r : rows)
      std::cout << fmt::format("{:>10} {:>6} {:>14.1f} {:>14.2f} {:>12.2f} {:>10.2f}\n", r["torch_intra_op"].get<int>(),
                               r["blas"].get<int>(), r["matmul_gflops"].get<double>(), r["lora_mlp_ms"].get<double>(),
                               r["softmax_ms"].get<double>(), r["lora_mlp_vs_gym_choice"].get<double>());
  });
}

}  // namespace gym::cli
