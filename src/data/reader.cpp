// Rows of .json / .jsonl / .csv / .tsv files → Conversations, skipping malformed rows with one counted warning.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <random>

#include "data/delimited.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"
#include "gym/data/dataset.h"

namespace gym::data {

namespace fs = std::filesystem;
using tokenizer::ChatMessage;

namespace {

struct BadRow : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string text_field(const nlohmann::json& row, const std::string& col, bool required) {
  if (col.empty() || !row.contains(col) || row[col].is_null()) {
    if (required) throw BadRow(fmt::format("missing column '{}'", col));
    return "";
  }
  if (!row[col].is_string()) throw BadRow(fmt::format("column '{}' is not a string", col));
  return row[col].get<std::string>();
}

ChatMessage message(const std::string& role, const std::string& content) {
  ChatMessage m;
  m.role = role;
  m.content = content;
  return m;
}

nlohmann::json extra_columns(const nlohmann::json& row, const std::vector<std::string>& used) {
  nlohmann::json extra = nlohmann::json::object();
  for (auto it = row.begin(); it != row.end(); ++it)
    if (std::find(used.begin(), used.end(), it.key()) == used.end()) extra[it.key()] = *it;
  return extra;
}

// Reference answers for rewards: dataset_info.json may map a column to answer / solution /
// ground_truth ("columns": {"answer": "final_value"}); the row's value then also appears under that name.
void map_reward_columns(const nlohmann::json& row, const DatasetSpec& s, nlohmann::json& extra) {
  for (const char* key : {"answer", "solution", "ground_truth"}) {
    const auto it = s.columns.find(key);
    if (it != s.columns.end() && !it->second.empty() && row.contains(it->second)) extra[key] = row[it->second];
  }
}

Conversation parse_alpaca(const nlohmann::json& row, const DatasetSpec& s, bool prompt_only) {
  const auto& c = s.columns;
  Conversation conv;
  auto col = [&](const char* k) { auto it = c.find(k); return it == c.end() ? std::string() : it->second; };
  // TRL's prompt column may hold a list of messages.
  if (!col("prompt").empty() && row.contains(col("prompt")) && row[col("prompt")].is_array()) {
    for (const auto& m : row[col("prompt")]) {
      if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["content"].is_string())
        throw BadRow("prompt messages need role and string content");
      const std::string role = m["role"].get<std::string>();
      if (role == "system") conv.system = m["content"].get<std::string>();
      else conv.turns.push_back(message(role, m["content"].get<std::string>()));
    }
  } else {
    std::string user = text_field(row, col("prompt"), true);
    const std::string query = text_field(row, col("query"), false);
    if (!query.empty()) user += "\n" + query;
    if (!col("history").empty() && row.contains(col("history")) && row[col("history")].is_array()) {
      for (const auto& pair : row[col("history")]) {
        if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string())
          throw BadRow("history must be a list of [query, response] pairs");
        conv.turns.push_back(message("user", pair[0].get<std::string>()));
        conv.turns.push_back(message("assistant", pair[1].get<std::string>()));
      }
    }
    conv.turns.push_back(message("user", user));
  }
  const std::string response = text_field(row, col("response"), !prompt_only);
  if (!prompt_only) conv.turns.push_back(message("assistant", response));
  if (!col("system").empty() && row.contains(col("system")) && row[col("system")].is_string())
    conv.system = row[col("system")].get<std::string>();
  conv.extra = extra_columns(row, {col("prompt"), col("query"), col("response"), col("history"), col("system")});
  map_reward_columns(row, s, conv.extra);
  return conv;
}

Conversation parse_messages(const nlohmann::json& row, const DatasetSpec& s, bool prompt_only) {
  const std::string mcol = s.columns.count("messages") ? s.columns.at("messages") : "conversations";
  if (!row.contains(mcol) || !row[mcol].is_array()) throw BadRow(fmt::format("missing list column '{}'", mcol));
  const auto& t = s.tags;
  Conversation conv;
  const auto& msgs = row[mcol];
  size_t start = 0;
  auto role_of = [&](const nlohmann::json& m) {
    if (!m.is_object() || !m.contains(t.at("role_tag")) || !m[t.at("role_tag")].is_string()) throw BadRow("a message has no role");
    return m[t.at("role_tag")].get<std::string>();
  };
  auto content_of = [&](const nlohmann::json& m) {
    const auto& ct = t.at("content_tag");
    if (!m.contains(ct) || !(m[ct].is_string() || m[ct].is_null())) throw BadRow("a message has no string content");
    return m[ct].is_null() ? std::string() : m[ct].get<std::string>();
  };
  if (!msgs.empty() && role_of(msgs[0]) == t.at("system_tag")) conv.system = content_of(msgs[0]), start = 1;
  for (size_t i = start; i < msgs.size(); ++i) {
    const std::string role = role_of(msgs[i]);
    const bool user_slot = (i - start) % 2 == 0;
    const bool is_user = role == t.at("user_tag") || role == t.at("observation_tag");
    const bool is_assistant = role == t.at("assistant_tag") || role == t.at("function_tag");
    if (user_slot ? !is_user : !is_assistant)
      throw BadRow(fmt::format("wrong role order: message {} is '{}'", i, role));
    ChatMessage m = message(is_user ? (role == t.at("observation_tag") ? "tool" : "user") : "assistant", content_of(msgs[i]));
    if (msgs[i].contains("tool_calls") && msgs[i]["tool_calls"].is_array())
      m.tool_calls = parse_json<nlohmann::ordered_json>(msgs[i]["tool_calls"].dump());
    conv.turns.push_back(std::move(m));
  }
  const size_t n = conv.turns.size();
  if (n == 0) throw BadRow("no messages");
  if (!prompt_only && n % 2 != 0) throw BadRow("a supervised conversation needs an even number of user/assistant messages");
  if (prompt_only && conv.turns.back().role == "assistant") {
    conv.extra["completion"] = conv.turns.back().content;
    conv.turns.pop_back();
  }
  const std::string scol = s.columns.count("system") ? s.columns.at("system") : "";
  if (!scol.empty() && row.contains(scol) && row[scol].is_string()) conv.system = row[scol].get<std::string>();
  const std::string tcol = s.columns.count("tools") ? s.columns.at("tools") : "";
  if (!tcol.empty() && row.contains(tcol)) {
    const auto& tools = row[tcol];
    auto parsed = tools.is_string() ? parse_json<nlohmann::ordered_json>(tools.get<std::string>(), false)
                                    : parse_json<nlohmann::ordered_json>(tools.dump());
    if (parsed.is_array()) conv.tools = parsed;
  }
  for (auto it = row.begin(); it != row.end(); ++it)
    if (it.key() != mcol && it.key() != scol && it.key() != tcol) conv.extra[it.key()] = *it;
  map_reward_columns(row, s, conv.extra);
  return conv;
}

// Detects the layout of a plain file from its first row's keys.
void detect_format(DatasetSpec& s, const nlohmann::json& row) {
  if (row.contains("messages")) s.formatting = "openai", s.columns["messages"] = "messages", s.tags = {
      {"role_tag", "role"}, {"content_tag", "content"}, {"user_tag", "user"}, {"assistant_tag", "assistant"},
      {"observation_tag", "tool"}, {"function_tag", "function_call"}, {"system_tag", "system"}};
  else if (row.contains("conversations")) s.formatting = "sharegpt", s.columns["messages"] = "conversations", s.tags = {
      {"role_tag", "from"}, {"content_tag", "value"}, {"user_tag", "human"}, {"assistant_tag", "gpt"},
      {"observation_tag", "observation"}, {"function_tag", "function_call"}, {"system_tag", "system"}};
  else if (row.contains("prompt")) s.formatting = "alpaca", s.columns["prompt"] = "prompt",
       s.columns["response"] = row.contains("completion") ? "completion" : "response";
  else s.formatting = "alpaca";
}

std::vector<fs::path> files_of(const fs::path& p) {
  if (!fs::is_directory(p)) return {p};
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(p))
    if (e.path().extension() == ".json" || e.path().extension() == ".jsonl" || e.path().extension() == ".csv" ||
        e.path().extension() == ".tsv" || e.path().extension() == ".parquet")
      files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

static std::vector<Conversation> read_rows(const DatasetSpec& spec_in, bool prompt_only) {
  DatasetSpec spec = spec_in;
  std::vector<Conversation> out;
  for (const auto& file : files_of(spec.path)) {
    std::vector<std::pair<std::string, nlohmann::json>> rows;   // (where, row or discarded)
    std::vector<std::string> bad;
    const auto ext = file.extension().string();
    if (ext == ".parquet" || ext == ".arrow")
      config_error("{}: {} files need Apache Arrow's C++ library, which Debian 12 does not ship; convert the file once to JSON "
                   "lines, e.g. python3 -c \"import pandas as pd; pd.read_parquet('{}').to_json('{}.jsonl', orient='records', "
                   "lines=True, force_ascii=False)\", and point file_name at the .jsonl",
                   file.string(), ext == ".arrow" ? "Arrow" : "Parquet", file.filename().string(), file.stem().string());
    const std::string text = read_file(file);
    const bool jsonl = ext == ".jsonl";
    if (ext == ".csv" || ext == ".tsv") {
      rows = parse_delimited(text, ext == ".csv" ? ',' : '\t', file.string(), bad);
    } else if (jsonl) {
      size_t pos = 0;
      for (int line = 1; pos <= text.size(); ++line) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        const std::string l = text.substr(pos, nl - pos);
        pos = nl + 1;
        if (l.find_first_not_of(" \t\r") == std::string::npos) continue;
        auto j = parse_json(l, false);
        const std::string where = fmt::format("{}:{}", file.string(), line);
        if (j.is_discarded() || !j.is_object()) bad.push_back(fmt::format("line {} (invalid JSON)", line));
        else rows.emplace_back(where, std::move(j));
      }
    } else {
      auto j = parse_json(text, false);
      if (j.is_discarded() || !j.is_array()) config_error("{}: expected a JSON array of rows (or use .jsonl)", file.string());
      for (size_t i = 0; i < j.size(); ++i) {
        if (!j[i].is_object()) bad.push_back(fmt::format("row {} (not an object)", i + 1));
        else rows.emplace_back(fmt::format("{}:row {}", file.string(), i + 1), j[i]);
      }
    }
    if (spec.formatting == "auto" && !rows.empty()) detect_format(spec, rows.front().second);
    for (auto& [where, row] : rows) {
      try {
        Conversation c = spec.formatting == "alpaca" ? parse_alpaca(row, spec, prompt_only) : parse_messages(row, spec, prompt_only);
        c.source = where;
        out.push_back(std::move(c));
      } catch (const BadRow& e) {
        bad.push_back(where.substr(where.rfind(':') + 1) + " (" + e.what() + ")");
      } catch (const nlohmann::json::exception& e) {   // a field of the wrong type: a malformed row too
        bad.push_back(where.substr(where.rfind(':') + 1) + " (" + json_error_text(e) + ")");
      }
    }
    if (!bad.empty()) {
      std::vector<std::string> first(bad.begin(), bad.begin() + static_cast<long>(std::min<size_t>(bad.size(), 5)));
      spdlog::warn("dataset '{}': skipped {} malformed row(s) of {}: {}{}", spec.name, bad.size(), file.string(),
                   fmt::join(first, "; "), bad.size() > 5 ? "; ..." : "");
    }
  }
  if (spec.num_samples && static_cast<int64_t>(out.size()) > *spec.num_samples) out.resize(static_cast<size_t>(*spec.num_samples));
  return out;
}

std::vector<Conversation> read_dataset(const DatasetSpec& spec, bool prompt_only) {
  return json_reader(spec.path.string(), [&] { return read_rows(spec, prompt_only); });
}

Splits load_datasets(const config::DataArgs& args, bool prompt_only) {
  if (args.dataset.empty()) config_error("no dataset given (key: dataset)");
  std::vector<Conversation> all;
  for (const auto& name : args.dataset) {
    auto rows = read_dataset(resolve_dataset(name, args.dataset_dir), prompt_only);
    if (args.max_samples && static_cast<int64_t>(rows.size()) > *args.max_samples) rows.resize(static_cast<size_t>(*args.max_samples));
    if (rows.empty()) config_error("dataset '{}' has no usable rows", name);
    spdlog::info("dataset '{}': {} rows", name, rows.size());
    std::move(rows.begin(), rows.end(), std::back_inserter(all));
  }
  // Deterministic shuffle: Fisher-Yates over std::mt19937_64 (same order on every platform).
  std::mt19937_64 rng(static_cast<uint64_t>(args.seed));
  for (size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[rng() % i]);
  Splits s;
  size_t n_eval = 0;
  if (args.val_size > 0)
    n_eval = args.val_size >= 1 ? static_cast<size_t>(args.val_size) : static_cast<size_t>(args.val_size * all.size());
  if (n_eval >= all.size()) config_error("val_size {} leaves no training rows ({} rows in total)", args.val_size, all.size());
  s.eval.assign(all.begin(), all.begin() + static_cast<long>(n_eval));
  s.train.assign(all.begin() + static_cast<long>(n_eval), all.end());
  // eval_dataset: read as given (max_samples per dataset, no shuffle: the order does not matter to
  // a mean); the training rows and their order are untouched.
  for (const auto& name : args.eval_dataset) {
    std::vector<Conversation> rows;
    try {
      rows = read_dataset(resolve_dataset(name, args.dataset_dir), prompt_only);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Config) throw;
      config_error("key 'eval_dataset': {}", e.what());
    }
    if (args.max_samples && static_cast<int64_t>(rows.size()) > *args.max_samples) rows.resize(static_cast<size_t>(*args.max_samples));
    if (rows.empty()) config_error("key 'eval_dataset': dataset '{}' has no usable rows", name);
    spdlog::info("eval dataset '{}': {} rows", name, rows.size());
    std::move(rows.begin(), rows.end(), std::back_inserter(s.eval));
  }
  return s;
}

}  // namespace gym::data
