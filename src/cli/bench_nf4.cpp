// gym bench nf4: LoRA SFT on a float32 vs a 4-bit base of the same model (resident memory, step
// time), and the dequantize throughput, beside the matmul rate of this machine.
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>

#include "cli/bench.h"
#include "gym/config/config.h"
#include "gym/core/threads.h"
#include "gym/lora/adapter.h"
#include "gym/model/create.h"
#include "gym/model/loader.h"
#include "gym/quant/nf4.h"
#include "gym/recipes/optimization.h"
#include "recipes/losses.h"

namespace gym::cli {

namespace {
double rss_mib() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}
double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

void add_bench_nf4(CLI::App& bench) {
  auto shape = std::make_shared<std::string>("small");
  auto* cmd = bench.add_subcommand("nf4", "LoRA SFT on a float32 vs a 4-bit NF4 base; dequantize GB/s");
  cmd->add_option("--shape", *shape, "tiny, small or qwen-like")->check(CLI::IsMember({"tiny", "small", "qwen-like"}));
  cmd->callback([shape] {
    const auto dir = std::filesystem::temp_directory_path() / ("gym_bench_nf4_" + *shape);
    if (!std::filesystem::exists(dir / "model.safetensors")) model::create_model("qwen3", *shape, dir, "bytes", 0);
    nlohmann::json out = {{"bench", "nf4"}, {"shape", *shape}, {"threads", configure_threads().describe()}};
    for (int bits : {4, 0}) {   // 4-bit first: freed float32 pages would hide its footprint
      const double before = rss_mib();
      auto m = model::load_model(dir, torch::kFloat32, {bits, 64, true});
      config::LoraArgs la;
      la.rank = 8;
      la.alpha = 16;
      lora::inject(*m, la);
      const double loaded = rss_mib() - before;
      config::TrainingArgs ta;
      recipes::Optimization opt(lora::trainable_parameters(*m), ta, 10);
      auto ids = torch::randint(0, 256, {4, 128}, torch::kInt64);
      std::vector<double> times;
      for (int i = 0; i < 4; ++i) {
        auto s = std::chrono::steady_clock::now();
        auto loss = recipes::causal_lm_loss(*m, ids, torch::ones_like(ids), ids, 4 * 127, false).loss;
        loss.backward();
        opt.step(i, loss.item<double>());
        if (i) times.push_back(since(s));
      }
      std::sort(times.begin(), times.end());
      out[bits ? "nf4_base" : "float32_base"] = {{"weights_rss_mib", loaded}, {"rss_after_steps_mib", rss_mib() - before},
                                                 {"median_step_s", times[times.size() / 2]}};
    }
    auto w = torch::randn({4096, 4096});
    auto q = quant::quantize_nf4(w, 64, true);
    (void)quant::dequantize_nf4(q);
    auto s = std::chrono::steady_clock::now();
    for (int i = 0; i < 3; ++i) (void)quant::dequantize_nf4(q);
    const double secs = since(s) / 3;
    out["dequantize_gb_per_s_output_fp32"] = 4096.0 * 4096 * 4 / secs / 1e9;
    out["bits_per_param_double_quant"] = quant::nf4_bits_per_param(q);
    std::cout << out.dump(2) << "\n";
  });
}

}  // namespace gym::cli
