#include "gym/tokenizer/bytes_tokenizer.h"

#include <nlohmann/json.hpp>

#include "gym/core/fs.h"
#include "tokenizer/bytes_map.h"

namespace gym::tokenizer {

void write_bytes_tokenizer(const std::filesystem::path& dir) {
  const auto& bm = ByteMap::get();
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[bm.to_unicode[static_cast<size_t>(b)]] = b;
  const std::vector<std::pair<std::string, bool>> specials = {
      {"<|endoftext|>", true}, {"<|im_start|>", true},  {"<|im_end|>", true},         {"<think>", false},
      {"</think>", false},     {"<tool_call>", false},  {"</tool_call>", false},      {"<tool_response>", false},
      {"</tool_response>", false}};
  nlohmann::json added = nlohmann::json::array();
  int64_t id = 256;
  for (const auto& [content, special] : specials)
    added.push_back({{"id", id++}, {"content", content}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", special}});
  const nlohmann::json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  nlohmann::json t = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          byte_level}}}},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  nlohmann::json cfg = {{"tokenizer_class", "Qwen2Tokenizer"}, {"eos_token", "<|im_end|>"}, {"pad_token", "<|endoftext|>"},
                        {"bos_token", nullptr}, {"add_bos_token", false}, {"model_max_length", 131072},
                        {"clean_up_tokenization_spaces", false}, {"errors", "replace"}, {"split_special_tokens", false}};
  std::filesystem::create_directories(dir);
  write_file_atomic(dir / "tokenizer.json", t.dump(1) + "\n");
  write_file_atomic(dir / "tokenizer_config.json", cfg.dump(2) + "\n");
}

}  // namespace gym::tokenizer
