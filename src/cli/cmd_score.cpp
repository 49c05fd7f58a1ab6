// gym score --model DIR [--adapter DIR] --input IN.json --output OUT.json [--no-logits]
#include <iostream>

#include "cli/commands.h"
#include "cli/model_args.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"
#include "gym/model/score.h"

namespace gym::cli {

namespace {
torch::Tensor int_matrix(const nlohmann::json& j, const char* key, const std::string& file) {
  if (!j.contains(key) || !j[key].is_array() || j[key].empty()) config_error("{}: '{}' must be a non-empty list of lists", file, key);
  const size_t width = j[key][0].size();
  std::vector<int64_t> flat;
  for (const auto& row : j[key]) {
    if (!row.is_array() || row.size() != width) config_error("{}: every row of '{}' must have {} entries", file, key, width);
    for (const auto& v : row) {
      if (!v.is_number_integer()) config_error("{}: '{}' must hold integers", file, key);
      flat.push_back(v.get<int64_t>());
    }
  }
  return torch::tensor(flat, torch::kInt64).view({static_cast<int64_t>(j[key].size()), static_cast<int64_t>(width)});
}
}  // namespace

void add_score_command(CLI::App& app) {
  struct Args {
    std::string model, adapter, input, output;
    bool no_logits = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("score", "Logits, next-token log-probs and loss of token sequences");
  cmd->add_option("--model", a->model, "Model folder or hub id in the HF cache")->required();
  cmd->add_option("--adapter", a->adapter, "PEFT LoRA adapter folder");
  cmd->add_option("--input", a->input, "JSON: {\"input_ids\": [[...]], \"attention_mask\": [[...]], \"position_ids\"?}")->required();
  cmd->add_option("--output", a->output, "Where to write the JSON result")->required();
  cmd->add_flag("--no-logits", a->no_logits, "Leave the [B][T][V] logits out of the output");
  cmd->callback([a] {
    nlohmann::json in;
    try {
      in = parse_json(read_file(a->input));
    } catch (const nlohmann::json::exception& e) {   // parse_error, and out_of_range for a number like 1e999
      config_error("{}: invalid JSON: {}", a->input, e.what());
    }
    auto ids = int_matrix(in, "input_ids", a->input);
    auto mask = in.contains("attention_mask") ? int_matrix(in, "attention_mask", a->input) : torch::ones_like(ids);
    if (mask.sizes() != ids.sizes()) config_error("{}: attention_mask and input_ids differ in shape", a->input);
    if (ids.numel() == 0) config_error("{}: input_ids holds no tokens", a->input);
    torch::Tensor pos = in.contains("position_ids") ? int_matrix(in, "position_ids", a->input) : torch::Tensor();
    if (pos.defined() && pos.sizes() != ids.sizes()) config_error("{}: position_ids and input_ids differ in shape", a->input);
    if (pos.defined() && pos.min().item<int64_t>() < 0) config_error("{}: position_ids must be non-negative", a->input);
    auto m = load_model_for_cli(a->model, a->adapter);
    if (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= m->config().vocab_size)
      config_error("{}: input_ids must lie in [0, {})", a->input, m->config().vocab_size);
    const auto r = model::score(*m, ids, mask, pos);
    nlohmann::json out;
    auto to_json = [](const torch::Tensor& t) {
      auto c = t.to(torch::kFloat64).contiguous();
      std::vector<double> flat(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
      return flat;
    };
    const int64_t b = ids.size(0), t = ids.size(1);
    if (!a->no_logits) {
      const int64_t v = r.logits.size(2);
      auto flat = to_json(r.logits);
      nlohmann::json lg = nlohmann::json::array();
      for (int64_t i = 0; i < b; ++i) {
        nlohmann::json row = nlohmann::json::array();
        for (int64_t j = 0; j < t; ++j)
          row.push_back(std::vector<double>(flat.begin() + (i * t + j) * v, flat.begin() + (i * t + j + 1) * v));
        lg.push_back(row);
      }
      out["logits"] = lg;
    }
    auto lp = to_json(r.logprobs);
    nlohmann::json lps = nlohmann::json::array();
    for (int64_t i = 0; i < b; ++i) lps.push_back(std::vector<double>(lp.begin() + i * (t - 1), lp.begin() + (i + 1) * (t - 1)));
    out["logprobs"] = lps;
    out["loss"] = r.loss;
    if (r.aux_loss) out["aux_loss"] = *r.aux_loss;
    write_file_atomic(a->output, out.dump() + "\n");
    std::cout << "loss " << r.loss << (r.aux_loss ? fmt::format(", aux_loss {}", *r.aux_loss) : std::string()) << " → "
              << a->output << "\n";
  });
}

}  // namespace gym::cli
