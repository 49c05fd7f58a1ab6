// dataset_info.json entries and plain file paths → DatasetSpec.
#include <fmt/format.h>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"
#include "gym/data/dataset.h"

namespace gym::data {

namespace fs = std::filesystem;

namespace {

const std::map<std::string, std::string> kAlpacaColumns = {
    {"prompt", "instruction"}, {"query", "input"}, {"response", "output"}, {"history", "history"},
    {"system", "system"},      {"tools", "tools"}, {"messages", "conversations"}};
const std::map<std::string, std::string> kShareGptTags = {
    {"role_tag", "from"},   {"content_tag", "value"},       {"user_tag", "human"},     {"assistant_tag", "gpt"},
    {"observation_tag", "observation"}, {"function_tag", "function_call"}, {"system_tag", "system"}};
const std::map<std::string, std::string> kOpenAiTags = {
    {"role_tag", "role"}, {"content_tag", "content"}, {"user_tag", "user"}, {"assistant_tag", "assistant"},
    {"observation_tag", "tool"}, {"function_tag", "function_call"}, {"system_tag", "system"}};

bool has_data_ext(const fs::path& p) {
  const auto e = p.extension();
  return e == ".json" || e == ".jsonl" || e == ".csv" || e == ".tsv" || e == ".parquet";
}

// Columns with LLaMA-Factory's pitfall: a `columns` object makes every unlisted column null.
std::map<std::string, std::string> columns_of(const nlohmann::json& entry, const std::string& formatting) {
  std::map<std::string, std::string> cols = kAlpacaColumns;
  if (formatting == "openai") cols["messages"] = "messages";
  if (entry.contains("columns") && entry["columns"].is_object()) {
    for (auto& [k, v] : cols) v.clear();
    for (auto it = entry["columns"].begin(); it != entry["columns"].end(); ++it)
      if (it->is_string()) cols[it.key()] = it->get<std::string>();
  }
  return cols;
}

}  // namespace

static DatasetSpec resolve(const std::string& name, const fs::path& dataset_dir) {
  DatasetSpec spec;
  spec.name = name;
  // A plain file path works as a dataset name (a recurring LLaMA-Factory request).
  if (has_data_ext(name)) {
    for (const auto& p : {fs::path(name), dataset_dir / name, source_dir() / name})
      if (fs::is_regular_file(p)) {
        spec.path = p;
        spec.formatting = "auto";
        spec.columns = kAlpacaColumns;
        return spec;
      }
  }
  const fs::path info_path = dataset_dir / "dataset_info.json";
  if (!fs::exists(info_path))
    config_error("dataset '{}': no dataset_info.json in dataset_dir '{}' and no such .json/.jsonl/.csv/.tsv file", name, dataset_dir.string());
  nlohmann::json info;
  try {
    info = parse_json(read_file(info_path));
  } catch (const nlohmann::json::exception& e) {   // parse_error, and out_of_range for a number like 1e999
    config_error("{}: invalid JSON: {}", info_path.string(), e.what());
  }
  if (!info.is_object()) config_error("{}: expected a JSON object of datasets", info_path.string());
  return json_reader(info_path.string(), [&] {
    if (!info.contains(name)) {
      std::vector<std::string> known;
      for (auto it = info.begin(); it != info.end(); ++it) known.push_back(it.key());
      config_error("dataset '{}' is not in {} (known: {})", name, info_path.string(), fmt::join(known, ", "));
    }
    const auto& e = info[name];
    for (const char* hub : {"hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name"})
      if (e.contains(hub))
        config_error("dataset '{}' is a {} entry ({}): not available offline; download it and register it with file_name",
                     name, hub, e[hub].dump());
    if (!e.contains("file_name")) config_error("{}: dataset '{}' has no file_name", info_path.string(), name);
    spec.path = dataset_dir / e["file_name"].get<std::string>();
    if (!fs::exists(spec.path)) config_error("dataset '{}': file '{}' does not exist", name, spec.path.string());
    spec.formatting = e.value("formatting", "alpaca");
    if (spec.formatting != "alpaca" && spec.formatting != "sharegpt" && spec.formatting != "openai")
      config_error("{}: dataset '{}' has formatting '{}' (alpaca, sharegpt or openai)", info_path.string(), name, spec.formatting);
    if (e.value("ranking", false)) config_error("dataset '{}' is a ranking (preference) dataset; gym trains sft, grpo and gspo", name);
    spec.columns = columns_of(e, spec.formatting);
    spec.tags = spec.formatting == "openai" ? kOpenAiTags : kShareGptTags;
    if (e.contains("tags") && e["tags"].is_object())
      for (auto it = e["tags"].begin(); it != e["tags"].end(); ++it) spec.tags[it.key()] = it->get<std::string>();
    if (e.contains("num_samples") && e["num_samples"].is_number_integer()) {
      spec.num_samples = e["num_samples"].get<int64_t>();
      if (*spec.num_samples <= 0) config_error("{}: dataset '{}': num_samples must be positive, got {}", info_path.string(), name, *spec.num_samples);
    }
    return spec;
  });
}

DatasetSpec resolve_dataset(const std::string& name, const fs::path& dataset_dir) {
  return json_reader((dataset_dir / "dataset_info.json").string(), [&] { return resolve(name, dataset_dir); });
}

}  // namespace gym::data
