// gym bench generate | sft | gspo: speed on the benchmark shapes, beside this machine's own
// 1024³ float32 matmul rate measured in the same run (figures are ratios, not absolutes).
#include <sys/resource.h>
#include <torch/cuda.h>

#include <chrono>
#include <fmt/format.h>

#include <iostream>

#include "cli/bench.h"
#include "gym/config/config.h"
#include "gym/core/profile.h"
#include "gym/core/threads.h"
#include "gym/lora/adapter.h"
#include "gym/model/family.h"
#include "gym/model/generate.h"
#include "gym/model/loader.h"
#include "gym/nn/layers.h"
#include "gym/ops/ops.h"
#include "gym/recipes/optimization.h"
#include "gym/rl/losses.h"
#include "recipes/losses.h"
#include "recipes/rollouts.h"

namespace gym::cli {

namespace {

using Clock = std::chrono::steady_clock;
// --device of the model benches: cpu (default), cuda or cuda:N.
torch::Device g_device = torch::kCPU;

// Timings on a GPU wait for the queued kernels first.
void sync_device() {
  if (g_device.is_cuda()) torch::cuda::synchronize(g_device.index());
}
double seconds_since(Clock::time_point t) {
  sync_device();
  return std::chrono::duration<double>(Clock::now() - t).count();
}
torch::TensorOptions on_device(torch::Dtype dt = torch::kFloat32) { return torch::TensorOptions().dtype(dt).device(g_device); }

double matmul_gflops() {
  auto a = torch::randn({1024, 1024}, on_device()), b = torch::randn({1024, 1024}, on_device());
  (void)torch::mm(a, b);
  std::vector<double> t;
  for (int i = 0; i < 5; ++i) {
    sync_device();
    auto s = Clock::now();
    (void)torch::mm(a, b);
    t.push_back(seconds_since(s));
  }
  std::sort(t.begin(), t.end());
  return 2.0 * 1024 * 1024 * 1024 / t[2] / 1e9;
}

// Sustained memory bandwidth: a 256 MiB float32 copy (read + write), median of 5.
double memory_gb_per_s() {
  auto src = torch::ones({64 << 20}), dst = torch::empty_like(src);
  dst.copy_(src);
  std::vector<double> t;
  for (int i = 0; i < 5; ++i) {
    auto s = Clock::now();
    dst.copy_(src);
    t.push_back(seconds_since(s));
  }
  std::sort(t.begin(), t.end());
  return 2.0 * static_cast<double>(src.numel()) * 4 / t[2] / 1e9;
}

// --profile: the section table of the last run (seconds of self time, the share of `wall`, and
// what no section claims).
nlohmann::json profile_table(double wall) {
  nlohmann::json j = nlohmann::json::object();
  double sum = 0;
  for (const auto& [name, sec] : profile::totals()) {
    j[name] = {{"s", sec}, {"fraction", sec / wall}};
    sum += sec;
  }
  j["unattributed"] = {{"s", wall - sum}, {"fraction", (wall - sum) / wall}};
  return j;
}

void print_profile(const std::string& title, const nlohmann::json& table) {
  std::cerr << title << "\n";
  std::vector<std::pair<double, std::string>> rows;
  for (auto it = table.begin(); it != table.end(); ++it) rows.push_back({it.value()["s"].get<double>(), it.key()});
  std::sort(rows.rbegin(), rows.rend());
  for (const auto& [sec, name] : rows)
    std::cerr << fmt::format("  {:<20} {:9.3f} s {:6.1f} %\n", name, sec, 100.0 * table[name]["fraction"].get<double>());
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// A shape is a preset of qwen3 (tiny, small, qwen-like) or "<family>-<preset>" of another family
// (next-small: qwen3_next, omni-small: qwen3_omni_moe, moe-small: qwen3_moe).
model::ArchConfig bench_arch(const std::string& shape) {
  const auto dash = shape.find('-');
  const std::string head = dash == std::string::npos ? "" : shape.substr(0, dash);
  if (head == "next") return model::preset_arch("qwen3_next", shape.substr(dash + 1));
  if (head == "omni") return model::preset_arch("qwen3_omni_moe", shape.substr(dash + 1));
  if (head == "moe") return model::preset_arch("qwen3_moe", shape.substr(dash + 1));
  return model::preset_arch("qwen3", shape);
}

model::CausalLM bench_model(const std::string& shape, int64_t lora_rank) {
  auto m = model::build_model(bench_arch(shape), torch::TensorOptions().dtype(torch::kFloat32));
  model::init_random_weights(*m, 0);
  m->to(g_device);   // LoRA is attached on the device
  config::LoraArgs la;
  la.rank = lora_rank;
  la.alpha = 2.0 * lora_rank;
  la.target = {"all"};
  lora::inject(*m, la);
  return m;
}

// Base parameters except the embedding (lm_head counted once, tied or not).
double non_embedding_params(const model::ArchConfig& c) {
  const double h = c.hidden_size, d = c.head_dim;
  const double attn = h * d * (c.num_attention_heads * 2 + c.num_key_value_heads * 2);
  const double mlp = 3 * h * c.intermediate_size;
  return c.num_hidden_layers * (attn + mlp) + h * c.vocab_size;
}

void print(const nlohmann::json& j, bool json) {
  if (json) {
    std::cout << j.dump() << "\n";
    return;
  }
  std::cout << j.dump(2) << "\n";
}

void add_profile(CLI::App* cmd, bool& on) {
  cmd->add_flag("--profile", on, "Time per section (projections, LoRA, attention, norms, LM head, sampling, cache, backward, optimizer) and the machine's limits");
}

void add_shape_and_json(CLI::App* cmd, std::string& shape, bool& json) {
  std::vector<std::string> shapes;
  for (const char* family : {"", "moe-", "next-", "omni-"})
    for (const char* preset : {"tiny", "small", "qwen-like"}) shapes.push_back(std::string(family) + preset);
  cmd->add_option("--shape", shape, "tiny, small or qwen-like (Qwen3), or the same with a family prefix: moe-, next-, omni-")
      ->check(CLI::IsMember(shapes));
  cmd->add_flag("--json", json, "One JSON object");
  cmd->add_option_function<std::string>(
         "--device",
         [](const std::string& d) {
           g_device = torch::Device(d);
           if (g_device.is_cuda() && !torch::cuda::is_available()) throw CLI::ValidationError("--device", d + ": no CUDA device is visible");
         },
         "cpu (default), cuda or cuda:N")
      ->check(CLI::IsMember({"cpu", "cuda", "cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:4", "cuda:5", "cuda:6", "cuda:7"}));
}

}  // namespace

void add_bench_model(CLI::App& bench) {
  auto shape = std::make_shared<std::string>("tiny");
  auto json = std::make_shared<bool>(false);
  auto prof = std::make_shared<bool>(false);

  auto* gen = bench.add_subcommand("generate", "Batched sampling with the KV cache (LoRA r 8 attached)");
  add_shape_and_json(gen, *shape, *json);
  add_profile(gen, *prof);
  gen->callback([shape, json, prof] {
    const double gflops = matmul_gflops();
    auto m = bench_model(*shape, 8);
    m->eval();
    nlohmann::json out = {{"bench", "generate"}, {"shape", *shape}, {"device", g_device.str()}, {"matmul_gflops", gflops},
                          {"threads", configure_threads().describe()}};
    for (int64_t batch : {8, 1}) {
      auto prompt = torch::randint(0, 256, {batch, 32}, on_device(torch::kInt64));
      auto mask = torch::ones_like(prompt);
      model::SamplingConfig sc;
      sc.do_sample = true;
      sc.max_new_tokens = 128;   // no stop ids: every sequence runs to the end
      torch::NoGradGuard ng;
      // The prefill as generate() runs it: the prompt's hidden states, logits of the last position.
      auto s = Clock::now();
      {
        nn::ScopedLoraMerge merged(*m, sc.merge_lora);
        model::ForwardOptions fo;
        fo.attention_mask = mask;
        (void)m->lm_logits(m->hidden_states(prompt, fo).hidden.narrow(1, 31, 1));
      }
      const double prefill = seconds_since(s);
      profile::set_enabled(*prof);
      profile::reset();
      s = Clock::now();
      model::generate(*m, prompt, mask, sc, ops::make_generator(g_device, 0));
      const double total = seconds_since(s);
      profile::set_enabled(false);
      const double decode = std::max(1e-9, total - prefill);
      const std::string key = "batch_" + std::to_string(batch);
      out[key] = {{"prefill_tokens_per_s", batch * 32 / prefill}, {"decode_tokens_per_s", batch * 128 / decode}, {"total_s", total},
                  {"decode_ms_per_step", decode / 127 * 1e3}};
      if (*prof) {
        out[key]["profile"] = profile_table(total);
        print_profile("generate " + key + " (" + std::to_string(total) + " s, prefill + 128 steps):", out[key]["profile"]);
      }
    }
    out["peak_rss_mib"] = peak_rss_mib();
    if (*prof) {
      // The decode limits: every step streams the projection weights, the (tied) LM head and the
      // KV cache once; the matmul peak bounds the FLOPs.
      const auto& c = m->config();
      const double bw = memory_gb_per_s();
      const double weight_bytes = 4 * non_embedding_params(c);
      const double kv_bytes = 4.0 * 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * (32 + 64);   // mean context, per row
      nlohmann::json lim = {{"memory_gb_per_s", bw}, {"matmul_gflops", gflops}, {"weight_bytes_per_step", weight_bytes}};
      for (int64_t batch : {8, 1}) {
        const double bytes = weight_bytes + batch * kv_bytes;
        const double mem_tok_s = batch / (bytes / (bw * 1e9));
        const double flop_tok_s = gflops * 1e9 / (2 * non_embedding_params(c));
        lim["batch_" + std::to_string(batch)] = {{"memory_bound_tokens_per_s", mem_tok_s}, {"compute_bound_tokens_per_s", flop_tok_s},
                                                 {"best_tokens_per_s", std::min(mem_tok_s, flop_tok_s)},
                                                 {"best_ms_per_step", 1e3 * batch / std::min(mem_tok_s, flop_tok_s)}};
      }
      out["limits"] = lim;
      std::cerr << "limits: " << lim.dump() << "\n";
    }
    print(out, *json);
  });

  auto* sft = bench.add_subcommand("sft", "One LoRA SFT step (r 8, alpha 16, all projections)");
  add_shape_and_json(sft, *shape, *json);
  add_profile(sft, *prof);
  sft->callback([shape, json, prof] {
    const double gflops = matmul_gflops();
    auto m = bench_model(*shape, 8);
    const int64_t b = *shape == "tiny" ? 8 : 4, t = *shape == "tiny" ? 64 : 256;
    config::TrainingArgs ta;
    ta.learning_rate = 1e-4;
    recipes::Optimization opt(lora::trainable_parameters(*m), ta, 100);
    auto ids = torch::randint(0, 256, {b, t}, on_device(torch::kInt64));
    auto mask = torch::ones_like(ids);
    std::vector<double> times;
    double profiled_wall = 0;
    for (int i = 0; i < 7; ++i) {
      profile::set_enabled(*prof && i >= 2);
      auto s = Clock::now();
      auto loss = [&] {
        GYM_PROFILE("loss (log-softmax)");
        return recipes::causal_lm_loss(*m, ids, mask, ids, b * (t - 1), false).loss;
      }();
      {
        GYM_PROFILE("backward (all)");
        loss.backward();
      }
      {
        GYM_PROFILE("optimizer");
        opt.step(i, loss.item<double>());
      }
      if (i >= 2) times.push_back(seconds_since(s)), profiled_wall += times.back();
    }
    profile::set_enabled(false);
    const auto& c = m->config();
    const double tokens = static_cast<double>(b * t);
    const double flops = 4 * non_embedding_params(c) * tokens + 12.0 * c.num_hidden_layers * c.num_attention_heads * c.head_dim * t * tokens;
    const double step = median(times);
    nlohmann::json j = {{"bench", "sft"}, {"shape", *shape}, {"device", g_device.str()}, {"batch", b}, {"seq", t}, {"median_step_s", step}, {"tokens_per_s", tokens / step},
           {"peak_rss_mib", peak_rss_mib()}, {"achieved_gflops", flops / step / 1e9}, {"matmul_gflops", gflops},
           {"fraction_of_matmul_peak", flops / step / 1e9 / gflops}, {"threads", configure_threads().describe()}};
    if (*prof) {
      j["profile"] = profile_table(profiled_wall);
      print_profile("sft (5 steps, " + std::to_string(profiled_wall) + " s):", j["profile"]);
    }
    print(j, *json);
  });

  auto* moe = bench.add_subcommand("moe", "The MoE layer (tokens grouped by expert) against a dense MLP of the same active size");
  add_shape_and_json(moe, *shape, *json);
  moe->callback([shape, json] {
    const double gflops = matmul_gflops();
    auto c = model::preset_arch("qwen3_moe", *shape);
    c.num_experts = 64;
    c.num_experts_per_tok = 8;
    nn::MoeOptions mo;
    mo.hidden = c.hidden_size, mo.num_experts = c.num_experts, mo.top_k = c.num_experts_per_tok;
    mo.expert_intermediate = c.moe_intermediate_size, mo.norm_topk_prob = c.norm_topk_prob;
    nn::SparseMoe layer(mo);
    nn::MLP dense(c.hidden_size, c.moe_intermediate_size * c.num_experts_per_tok);   // same active parameters
    torch::NoGradGuard ng;
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t tokens : {256, 1024, 4096}) {
      auto x = torch::randn({1, tokens, c.hidden_size});
      std::vector<double> tm, td;
      for (int i = 0; i < 4; ++i) {
        auto s = Clock::now();
        (void)layer(x);
        if (i) tm.push_back(seconds_since(s));
        s = Clock::now();
        (void)dense(x);
        if (i) td.push_back(seconds_since(s));
      }
      rows.push_back({{"tokens", tokens}, {"moe_ms", median(tm) * 1e3}, {"dense_same_active_ms", median(td) * 1e3},
                      {"moe_over_dense", median(tm) / median(td)}});
    }
    print({{"bench", "moe"}, {"shape", *shape}, {"experts", c.num_experts}, {"top_k", c.num_experts_per_tok}, {"rows", rows},
           {"matmul_gflops", gflops}, {"threads", configure_threads().describe()}},
          *json);
  });

  auto* gspo = bench.add_subcommand("gspo", "One GSPO step: 2 prompts × 8 generations, 32 + 64 tokens, LoRA r 8");
  add_shape_and_json(gspo, *shape, *json);
  add_profile(gspo, *prof);
  gspo->callback([shape, json, prof] {
    const double gflops = matmul_gflops();
    auto m = bench_model(*shape, 8);
    config::TrainingArgs ta;
    recipes::Optimization opt(lora::trainable_parameters(*m), ta, 100);
    auto policy = rl::make_policy_loss("gspo");
    rl::PolicyLossConfig pc;
    pc.loss_type = "grpo";
    pc.epsilon_low = 3e-4, pc.epsilon_high = 4e-4;
    std::vector<double> gen_t, lp_t, opt_t;
    double profiled_wall = 0;
    for (int i = 0; i < 4; ++i) {
      profile::set_enabled(*prof && i > 0);
      const auto round_start = Clock::now();
      auto distinct = torch::randint(0, 256, {2, 32}, torch::kInt64);   // 2 prompts, 8 completions each
      model::SamplingConfig sc;
      sc.do_sample = true;
      sc.max_new_tokens = 64;
      std::vector<data::RlPrompt> rp(2);
      for (int64_t grp = 0; grp < 2; ++grp)
        rp[static_cast<size_t>(grp)].prompt_ids = std::vector<int64_t>(distinct[grp].data_ptr<int64_t>(), distinct[grp].data_ptr<int64_t>() + 32);
      auto s = Clock::now();
      m->eval();
      // The rollouts as training generates them: each group of 8 in its own batch and generator.
      const auto out = recipes::generate_groups(*m, {&rp[0], &rp[1]}, {2 * static_cast<uint64_t>(i), 2 * static_cast<uint64_t>(i) + 1}, 8,
                                                sc, g_device);
      m->train();
      const double g = seconds_since(s);
      s = Clock::now();
      model::ForwardOptions fo;
      fo.attention_mask = torch::cat({out.prompt_mask, out.completion_mask}, 1);
      auto hidden = m->hidden_states(torch::cat({out.prompt_ids, out.completion_ids}, 1), fo).hidden;
      auto logits = m->lm_logits(hidden.narrow(1, 31, 64));
      torch::Tensor loss;
      {
        GYM_PROFILE("loss (log-softmax)");
        auto logp = rl::selective_log_softmax(logits, out.completion_ids, 1.0);
        auto adv = torch::randn({16}, on_device());
        loss = policy->compute({logp, logp.detach() + 0.01, {}, adv, out.completion_mask.to(torch::kFloat32)}, pc).loss;
      }
      {
        GYM_PROFILE("backward (all)");
        loss.backward();
      }
      const double lp = seconds_since(s);
      s = Clock::now();
      {
        GYM_PROFILE("optimizer");
        opt.step(i, loss.item<double>());
      }
      const double o = seconds_since(s);
      if (i > 0) gen_t.push_back(g), lp_t.push_back(lp), opt_t.push_back(o), profiled_wall += seconds_since(round_start);
    }
    profile::set_enabled(false);
    const double g = median(gen_t), l = median(lp_t), o = median(opt_t);
    nlohmann::json j = {{"bench", "gspo"}, {"shape", *shape}, {"device", g_device.str()}, {"generation_s", g}, {"logprob_forward_backward_s", l}, {"optimizer_s", o},
                        {"total_s", g + l + o}, {"generation_fraction", g / (g + l + o)}, {"matmul_gflops", gflops},
                        {"peak_rss_mib", peak_rss_mib()}, {"threads", configure_threads().describe()}};
    if (*prof) {
      j["profile"] = profile_table(profiled_wall);
      print_profile("gspo (3 steps, " + std::to_string(profiled_wall) + " s):", j["profile"]);
    }
    print(j, *json);
  });
}

}  // namespace gym::cli
