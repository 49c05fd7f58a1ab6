// Hugging Face tokenizer.json byte-level BPE (the Qwen2/Qwen3 family), exact to the Python stack.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gym::tokenizer {

struct AddedToken {
  int64_t id;
  std::string content;
  bool special;
};

class Tokenizer {
 public:
  // tokenizer.json (+ tokenizer_config.json for eos/pad/chat template) from a model folder.
  static Tokenizer from_dir(const std::filesystem::path& dir);
  static Tokenizer from_json(const nlohmann::json& tokenizer_json, const nlohmann::json& tokenizer_config,
                             const std::string& source);

  // Added tokens (special or not) are matched in the raw text, longest first; the rest is NFC
  // normalised, split by the pre-tokenizer regex, byte-mapped and merged by BPE rank.
  std::vector<int64_t> encode(const std::string& text) const;
  // Invalid UTF-8 becomes U+FFFD, as Python's errors="replace".
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  std::optional<int64_t> token_to_id(const std::string& token) const;
  std::string id_to_token(int64_t id) const;   // "" when unknown
  int64_t vocab_size() const;                  // base vocab + added tokens (max id + 1)
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return pad_id_; }
  std::optional<int64_t> im_start_id() const { return token_to_id("<|im_start|>"); }
  std::optional<int64_t> im_end_id() const { return token_to_id("<|im_end|>"); }
  // Where generation stops: eos, and <|im_end|> (the end of a chat turn) when it is another token.
  std::vector<int64_t> stop_ids() const {
    std::vector<int64_t> ids{eos_id_};
    if (auto e = im_end_id(); e && *e != eos_id_) ids.push_back(*e);
    return ids;
  }
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  bool is_special(int64_t id) const;

 private:
  static Tokenizer from_json_unchecked(const nlohmann::json& tokenizer_json, const nlohmann::json& tokenizer_config,
                                       const std::string& source);
  struct Impl;
  std::shared_ptr<const Impl> impl_;
  std::vector<AddedToken> added_;
  int64_t eos_id_ = -1, pad_id_ = -1;
};

// Unicode NFC of a UTF-8 string (utf8proc); invalid UTF-8 is passed through unchanged.
std::string nfc(const std::string& text);

}  // namespace gym::tokenizer
