// gym tokenize --model DIR (--text T | --input FILE.jsonl) [--tokens] [--decode]
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "gym/core/error.h"
#include "gym/io/hf_dir.h"
#include "gym/tokenizer/tokenizer.h"

namespace gym::cli {

namespace {
struct TokenizeArgs {
  std::string model, text, input;
  bool tokens = false, decode = false;
};

nlohmann::json process(const tokenizer::Tokenizer& tok, const nlohmann::json& item, const TokenizeArgs& a,
                       const std::string& where) {
  if (a.decode) {
    const auto& ids = item.is_array() ? item : item.value("ids", nlohmann::json());
    if (!ids.is_array()) config_error("{}: expected {{\"ids\": [...]}}", where);
    return {{"text", tok.decode(ids.get<std::vector<int64_t>>())}};
  }
  if (!item.is_string() && !(item.is_object() && item.contains("text") && item["text"].is_string()))
    config_error("{}: expected {{\"text\": \"...\"}}", where);
  const auto ids = tok.encode(item.is_string() ? item.get<std::string>() : item["text"].get<std::string>());
  nlohmann::json out = {{"ids", ids}};
  if (a.tokens) {
    nlohmann::json t = nlohmann::json::array();
    for (auto id : ids) t.push_back(tok.id_to_token(id));
    out["tokens"] = t;
  }
  return out;
}
}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  auto* cmd = app.add_subcommand("tokenize", "Token ids of texts with a model's tokenizer (or --decode ids to text)");
  cmd->add_option("--model", a->model, "Model folder or hub id (its tokenizer.json)")->required();
  auto* text = cmd->add_option("--text", a->text, "A text (with --decode: a JSON list of ids)");
  auto* input = cmd->add_option("--input", a->input, "JSON lines: {\"text\": ...} (with --decode: {\"ids\": [...]})");
  text->excludes(input);
  cmd->add_flag("--tokens", a->tokens, "Also print the token strings");
  cmd->add_flag("--decode", a->decode, "Decode ids to text");
  cmd->callback([a] {
    if (a->text.empty() && a->input.empty()) config_error("gym tokenize needs --text or --input");
    const auto tok = tokenizer::Tokenizer::from_dir(io::resolve_model_dir(a->model));
    if (!a->input.empty()) {
      std::ifstream in(a->input);
      if (!in) config_error("cannot read --input '{}'", a->input);
      std::string line;
      for (int n = 1; std::getline(in, line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = fmt::format("{}:{}", a->input, n);
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded()) config_error("{}: invalid JSON", where);
        std::cout << process(tok, j, *a, where).dump() << "\n";
      }
      return;
    }
    nlohmann::json item = a->text;
    if (a->decode) {
      item = nlohmann::json::parse(a->text, nullptr, false);
      if (item.is_discarded()) config_error("--text with --decode must be a JSON list of ids");
    }
    std::cout << process(tok, item, *a, "--text").dump() << "\n";
  });
}

}  // namespace gym::cli
