// gym generate --model DIR [--adapter DIR] (--prompt TEXT | --input FILE.jsonl) [--config inference.yaml]
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/model_args.h"
#include "gym/config/config.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"
#include "gym/io/hf_dir.h"
#include "gym/model/generate.h"
#include "gym/tokenizer/chat_template.h"
#include "gym/tokenizer/tokenizer.h"

namespace gym::cli {

namespace {
struct GenArgs {
  std::string model, adapter, prompt, input, config;
  int64_t max_new_tokens = -1, top_k = -1;
  double temperature = -1, top_p = -1, repetition_penalty = -1;
  bool greedy = false, raw = false;
  uint64_t seed = 0;
};
}  // namespace

void add_generate_command(CLI::App& app) {
  auto a = std::make_shared<GenArgs>();
  auto* cmd = app.add_subcommand("generate", "Sample completions with the KV cache");
  cmd->add_option("--model", a->model, "Model folder or hub id (default: model_name_or_path of --config)");
  cmd->add_option("--adapter", a->adapter, "PEFT LoRA adapter folder (default: adapter_name_or_path of --config, unless --model names another model)");
  cmd->add_option("--config", a->config, "A preset's inference.yaml (template, sampling settings)");
  cmd->add_option("--prompt", a->prompt, "A user message (rendered with the chat template)");
  cmd->add_option("--input", a->input, "JSON lines: {\"input_ids\": [...]} or {\"prompt\": \"...\"}");
  cmd->add_option("--max_new_tokens", a->max_new_tokens, "Tokens to generate");
  cmd->add_option("--temperature", a->temperature, "Sampling temperature");
  cmd->add_option("--top_p", a->top_p, "Nucleus sampling");
  cmd->add_option("--top_k", a->top_k, "Top-k sampling");
  cmd->add_option("--repetition_penalty", a->repetition_penalty, "Repetition penalty");
  cmd->add_option("--seed", a->seed, "Sampling seed");
  cmd->add_flag("--greedy", a->greedy, "Greedy decoding");
  cmd->add_flag("--raw", a->raw, "Do not apply the chat template to --prompt");
  cmd->callback([a] {
    config::TrainConfig cfg;
    if (!a->config.empty()) cfg = config::load_config(a->config, {}).config;
    const std::string model_name = a->model.empty() ? cfg.model.model_name_or_path : a->model;
    if (model_name.empty()) config_error("gym generate needs --model (or a --config with model_name_or_path)");
    // The config's adapter belongs to the config's model: used unless --model names another one.
    const bool config_model = a->model.empty() || a->model == cfg.model.model_name_or_path;
    const std::string adapter = !a->adapter.empty() ? a->adapter : (config_model ? cfg.model.adapter_name_or_path : "");
    auto m = load_model_for_cli(model_name, adapter);
    const auto dir = io::resolve_model_dir(model_name);
    std::optional<tokenizer::Tokenizer> tok;
    if (std::filesystem::exists(dir / "tokenizer.json")) tok = tokenizer::Tokenizer::from_dir(dir);

    model::SamplingConfig sc;
    sc.max_new_tokens = a->max_new_tokens >= 0 ? a->max_new_tokens : (a->config.empty() ? 128 : cfg.training.max_new_tokens);
    sc.do_sample = !a->greedy;
    sc.temperature = a->temperature > 0 ? a->temperature : (a->config.empty() ? 1.0 : cfg.rl.temperature);
    sc.top_p = a->top_p > 0 ? a->top_p : (a->config.empty() ? 1.0 : cfg.rl.top_p);
    sc.top_k = a->top_k >= 0 ? a->top_k : (a->config.empty() ? 0 : cfg.rl.top_k);
    sc.repetition_penalty = a->repetition_penalty > 0 ? a->repetition_penalty : (a->config.empty() ? 1.0 : cfg.rl.repetition_penalty);
    if (tok) {
      sc.stop_ids = tok->stop_ids();
      sc.pad_id = tok->pad_id();
    }
    for (auto e : m->config().eos_token_ids)
      if (std::find(sc.stop_ids.begin(), sc.stop_ids.end(), e) == sc.stop_ids.end()) sc.stop_ids.push_back(e);
    torch::Generator gen = at::detail::createCPUGenerator(a->seed);

    auto render = [&](const std::string& text) {
      if (!tok) config_error("model '{}' has no tokenizer.json: pass input_ids instead of text", model_name);
      if (a->raw) return tok->encode(text);
      tokenizer::ChatMessage user;
      user.role = "user";
      user.content = text;
      tokenizer::ChatOptions o;
      o.add_generation_prompt = true;
      o.enable_thinking = a->config.empty() ? true : cfg.model.enable_thinking;
      return tok->encode(tokenizer::render_chat(a->config.empty() ? "qwen3" : cfg.model.template_name, {user}, o));
    };
    auto run = [&](const std::vector<int64_t>& ids) {
      if (ids.empty()) config_error("empty prompt");
      for (auto id : ids)
        if (id < 0 || id >= m->config().vocab_size) config_error("prompt token id {} is outside the model's vocabulary [0, {})", id, m->config().vocab_size);
      auto t = torch::tensor(ids, torch::kInt64).unsqueeze(0);
      auto out = model::generate(*m, t, torch::ones_like(t), sc, gen);
      const int64_t n = out.completion_mask.sum().item<int64_t>();
      std::vector<int64_t> comp(out.completion_ids.data_ptr<int64_t>(), out.completion_ids.data_ptr<int64_t>() + n);
      nlohmann::json j = {{"completion_ids", comp}, {"truncated", out.truncated[0].item<bool>()}};
      if (tok) j["text"] = tok->decode(comp, true);
      std::cout << j.dump() << "\n";
    };
    if (!a->prompt.empty()) return run(render(a->prompt));
    if (a->input.empty()) config_error("gym generate needs --prompt or --input");
    std::istringstream in(read_file(a->input));   // a regular file (never a FIFO or a folder)
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto j = parse_json(line, false);
      if (j.is_discarded() || !j.is_object()) config_error("{}:{}: invalid JSON line", a->input, n);
      if (j.contains("input_ids")) {
        if (!j["input_ids"].is_array()) config_error("{}:{}: \"input_ids\" must be a list of integers", a->input, n);
        std::vector<int64_t> ids;
        for (const auto& v : j["input_ids"]) {
          if (!v.is_number_integer()) config_error("{}:{}: \"input_ids\" must be a list of integers", a->input, n);
          ids.push_back(v.get<int64_t>());
        }
        run(ids);
      }
      else if (j.contains("prompt") && j["prompt"].is_string()) run(render(j["prompt"].get<std::string>()));
      else config_error("{}:{}: expected \"input_ids\" or \"prompt\"", a->input, n);
    }
  });
}

}  // namespace gym::cli
