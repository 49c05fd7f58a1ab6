// Datasets as LLaMA-Factory and TRL read them: dataset_info.json registry, alpaca / sharegpt /
// openai / prompt-only rows → conversations → training examples.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gym/config/config.h"
#include "gym/tokenizer/chat_template.h"
#include "gym/tokenizer/tokenizer.h"

namespace gym::data {

// One dataset_info.json entry (or a plain file path), resolved.
struct DatasetSpec {
  std::string name;
  std::filesystem::path path;               // a file, or a folder of .json/.jsonl files
  std::string formatting = "alpaca";        // alpaca | sharegpt | openai
  std::map<std::string, std::string> columns;   // role → column name ("" = not read)
  std::map<std::string, std::string> tags;
  std::optional<int64_t> num_samples;
};

// A row in the common form.
struct Conversation {
  std::string system;
  std::vector<tokenizer::ChatMessage> turns;   // user / assistant / tool, in order
  nlohmann::ordered_json tools = nlohmann::ordered_json::array();
  nlohmann::json extra = nlohmann::json::object();   // the other columns (e.g. `answer`) for rewards
  std::string source;                         // "file:line"
};

// dataset_dir/dataset_info.json entries; hub/script/cloud entries are a clear offline error; an
// unknown name lists the known ones; a path to a .json/.jsonl/.csv/.tsv file is accepted as a name.
DatasetSpec resolve_dataset(const std::string& name, const std::filesystem::path& dataset_dir);

// Reads every row; malformed rows (bad JSON, missing column, wrong role order) are skipped and
// counted in one warning naming the file and lines. prompt_only: RL rows (no response needed).
std::vector<Conversation> read_dataset(const DatasetSpec& spec, bool prompt_only);

struct Splits {
  std::vector<Conversation> train, eval;
};
// All datasets of the config (comma list), max_samples per dataset, shuffled by seed, val_size split.
Splits load_datasets(const config::DataArgs& args, bool prompt_only);

struct SftExample {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> labels;    // -100 on tokens that are not trained
};

struct RenderOptions {
  std::string template_name = "qwen3";
  bool enable_thinking = true;
  int64_t cutoff_len = 2048;
  bool train_on_prompt = false;
  bool mask_history = false;
  std::string default_system;
};

// LLaMA-Factory's supervised encoding with its cutoff rule (keeps the answer when it can).
SftExample encode_sft(const Conversation& c, const tokenizer::Tokenizer& tok, const RenderOptions& o);
// Concatenates examples up to cutoff_len (packing).
std::vector<SftExample> pack_examples(const std::vector<SftExample>& examples, int64_t cutoff_len);

// LLaMA-Factory's "training example" print: input_ids, inputs (decoded with special tokens),
// label_ids, labels (the trained tokens decoded; each masked run shown as [-100 ×N]).
std::string preview_example(const SftExample& e, const tokenizer::Tokenizer& tok);

struct RlPrompt {
  std::vector<int64_t> prompt_ids;   // left-truncated to max_prompt_length
  std::string prompt_text;
  nlohmann::json extra;
};
RlPrompt encode_rl_prompt(const Conversation& c, const tokenizer::Tokenizer& tok, const RenderOptions& o,
                          int64_t max_prompt_length);

}  // namespace gym::data
