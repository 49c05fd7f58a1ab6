// gym tokenize --model DIR (--text T | --input FILE.jsonl) [--tokens] [--decode]
// gym tokenize --model DIR --chat --input ROWS.jsonl [--template qwen3]: each row {"messages": [...],
// "tools"?, "add_generation_prompt"?, "enable_thinking"?} → {"text", "ids"} as apply_chat_template renders it.
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"
#include "gym/io/hf_dir.h"
#include "gym/tokenizer/chat_template.h"
#include "gym/tokenizer/tokenizer.h"

namespace gym::cli {

namespace {
struct TokenizeArgs {
  std::string model, text, input, chat_template = "qwen3";
  bool tokens = false, decode = false, chat = false;
};

// One --chat row (parsed with its key order kept: tools and tool-call arguments render in it).
nlohmann::json render_row(const tokenizer::Tokenizer& tok, const nlohmann::ordered_json& row, const TokenizeArgs& a,
                          const std::string& where) {
  if (!row.is_object() || !row.contains("messages") || !row["messages"].is_array())
    config_error("{}: expected {{\"messages\": [...], \"tools\"?: [...], \"add_generation_prompt\"?: bool, \"enable_thinking\"?: bool}}", where);
  std::vector<tokenizer::ChatMessage> messages;
  for (size_t i = 0; i < row["messages"].size(); ++i) {
    const auto& m = row["messages"][i];
    const std::string at = fmt::format("{}: messages[{}]", where, i);
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) config_error("{}: needs a string 'role'", at);
    tokenizer::ChatMessage msg;
    msg.role = m["role"].get<std::string>();
    if (m.contains("content") && !m["content"].is_null()) {
      if (!m["content"].is_string()) config_error("{}: 'content' must be a string", at);
      msg.content = m["content"].get<std::string>();
    }
    if (m.contains("reasoning_content") && !m["reasoning_content"].is_null()) {
      if (!m["reasoning_content"].is_string()) config_error("{}: 'reasoning_content' must be a string", at);
      msg.reasoning_content = m["reasoning_content"].get<std::string>();
      msg.has_reasoning = true;
    }
    if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (!m["tool_calls"].is_array()) config_error("{}: 'tool_calls' must be a list", at);
      msg.tool_calls = m["tool_calls"];
    }
    messages.push_back(std::move(msg));
  }
  tokenizer::ChatOptions o;
  auto flag = [&](const char* key, bool fallback) {
    if (!row.contains(key) || row[key].is_null()) return fallback;
    if (!row[key].is_boolean()) config_error("{}: '{}' must be true or false", where, key);
    return row[key].get<bool>();
  };
  o.add_generation_prompt = flag("add_generation_prompt", false);
  o.enable_thinking = flag("enable_thinking", true);
  if (row.contains("tools") && !row["tools"].is_null()) {
    if (!row["tools"].is_array()) config_error("{}: 'tools' must be a list", where);
    o.tools = row["tools"];
  }
  const std::string text = tokenizer::render_chat(a.chat_template, messages, o);
  return {{"text", text}, {"ids", tok.encode(text)}};
}

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
  auto* chat = cmd->add_flag("--chat", a->chat, "Render --input rows {\"messages\", \"tools\"?, \"add_generation_prompt\"?, "
                                                  "\"enable_thinking\"?} with the chat template, then tokenize");
  cmd->add_option("--template", a->chat_template, "Chat template of --chat")
      ->check(CLI::IsMember(tokenizer::known_templates()));
  chat->excludes(text);
  cmd->callback([a] {
    if (a->chat && a->input.empty()) config_error("gym tokenize --chat needs --input ROWS.jsonl");
    if (a->chat && a->decode) config_error("gym tokenize: --chat and --decode exclude each other");
    if (a->text.empty() && a->input.empty()) config_error("gym tokenize needs --text or --input");
    const auto tok = tokenizer::Tokenizer::from_dir(io::resolve_model_dir(a->model));
    if (!a->input.empty()) {
      std::istringstream in(read_file(a->input));   // a regular file (never a FIFO or a folder)
      std::string line;
      for (int n = 1; std::getline(in, line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = fmt::format("{}:{}", a->input, n);
        if (a->chat) {
          auto row = parse_json<nlohmann::ordered_json>(line, false);
          if (row.is_discarded()) config_error("{}: invalid JSON", where);
          std::cout << render_row(tok, row, *a, where).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
          continue;
        }
        auto j = parse_json(line, false);
        if (j.is_discarded()) config_error("{}: invalid JSON", where);
        std::cout << process(tok, j, *a, where).dump() << "\n";
      }
      return;
    }
    nlohmann::json item = a->text;
    if (a->decode) {
      item = parse_json(a->text, false);
      if (item.is_discarded()) config_error("--text with --decode must be a JSON list of ids");
    }
    std::cout << process(tok, item, *a, "--text").dump() << "\n";
  });
}

}  // namespace gym::cli
