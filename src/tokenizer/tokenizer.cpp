#include "gym/tokenizer/tokenizer.h"

#include <queue>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <climits>
#include <mutex>
#include <unordered_map>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"
#include "tokenizer/bytes_map.h"

namespace gym::tokenizer {

namespace {

// GPT-2's pattern, used by a ByteLevel pre-tokenizer with use_regex: true.
const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Regex {
  pcre2_code* code = nullptr;
  explicit Regex(const std::string& pattern, const std::string& source) {
    int err = 0;
    PCRE2_SIZE off = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err, &off,
                         nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      config_error("{}: the pre-tokenizer regex does not compile at offset {}: {}", source, off,
                   reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }
  ~Regex() { pcre2_code_free(code); }
  // "Isolated" split: every match and every gap between matches is a piece.
  void split(const std::string& text, std::vector<std::string>& out) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
    size_t pos = 0, last = 0;
    // The first match checks the whole subject's UTF-8 once; later ones skip the check, which would
    // otherwise rescan the subject at every match (quadratic in the line length).
    uint32_t options = 0;
    while (pos <= text.size()) {
      const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos, options, md, nullptr);
      if (rc < 0) break;
      options = PCRE2_NO_UTF_CHECK;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[0] > last) out.push_back(text.substr(last, ov[0] - last));
      if (ov[1] > ov[0]) out.push_back(text.substr(ov[0], ov[1] - ov[0]));
      last = ov[1];
      if (ov[1] == ov[0]) {   // empty match: step over one code point
        if (ov[1] >= text.size()) break;
        size_t i = ov[1];
        uint32_t cp;
        if (!next_code_point(text, i, cp)) ++i;
        pos = i;
      } else {
        pos = ov[1];
      }
    }
    if (last < text.size()) out.push_back(text.substr(last));
    pcre2_match_data_free(md);
  }
};

std::string token_content(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) {
    if (!v["content"].is_string())   // read from tokenizer_config.json (json_reader would name tokenizer.json)
      config_error("tokenizer_config.json: a special token's \"content\" must be a string, got {}", v["content"].dump());
    return v["content"].get<std::string>();
  }
  return "";
}

}  // namespace

struct Tokenizer::Impl {
  std::unordered_map<std::string, int64_t> vocab;
  std::vector<std::string> id_to_token;
  // (left id << 32 | right id) → (rank, id of the merged symbol); merges work on ids, never strings
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;
  std::array<int32_t, 256> byte_id{};                   // the vocabulary id of each byte's symbol, -1 if none
  std::array<bool, 256> added_first{};                  // bytes that begin an added token
  std::unique_ptr<Regex> regex;
  bool nfc = false;
  std::vector<AddedToken> added_by_length;              // longest first
  std::unordered_map<int64_t, bool> added_special;
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache;

  std::vector<int64_t> bpe(const std::string& piece) const {
    {
      std::lock_guard<std::mutex> lock(cache_mutex);
      auto it = cache.find(piece);
      if (it != cache.end()) return it->second;
    }
    // Merges by rank, leftmost first among equal ranks (as tokenizers' word.rs): a heap of candidate
    // pairs over a linked list of symbols, so a piece of n bytes costs O(n log n), never O(n²).
    // Symbols are vocabulary ids from the start (one per byte); a merge replaces the left one's id.
    if (piece.size() >= UINT32_MAX) runtime_error("tokenizer: a single pre-token of {} bytes is too long", piece.size());
    const auto n = static_cast<uint32_t>(piece.size());
    std::vector<int32_t> sym(n);
    std::vector<uint32_t> next(n), prev(n);
    for (uint32_t i = 0; i < n; ++i) {
      const auto b = static_cast<unsigned char>(piece[i]);
      sym[i] = byte_id[b];
      if (sym[i] < 0) runtime_error("tokenizer: symbol '{}' is not in the vocabulary (no unk_token)", ByteMap::get().to_unicode[b]);
      next[i] = i + 1, prev[i] = i ? i - 1 : 0;
    }
    struct Candidate {
      int32_t rank, merged;
      uint32_t left, right, right_next;   // right_next: next[right] when queued (the right symbol's end)
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
    auto consider = [&](uint32_t l, uint32_t r) {
      if (r >= n) return;
      auto it = merges.find(static_cast<uint64_t>(static_cast<uint32_t>(sym[l])) << 32 | static_cast<uint32_t>(sym[r]));
      if (it != merges.end()) heap.push({it->second.first, it->second.second, l, r, next[r]});
    };
    for (uint32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);
    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      // stale: the left symbol absorbed another, or the right one grew, since the pair was queued
      // (symbol 0 never dies; a dead symbol is unlinked, so next[left] == right means both are alive)
      if (next[c.left] != c.right || next[c.right] != c.right_next) continue;
      sym[c.left] = c.merged;
      next[c.left] = next[c.right];
      next[c.right] = c.right;   // unlinked: no later pair can match it
      if (next[c.left] < n) prev[next[c.left]] = c.left;
      if (c.left > 0) consider(prev[c.left], c.left);
      consider(c.left, next[c.left]);
    }
    std::vector<int64_t> ids;
    for (uint32_t i = 0; i < n; i = next[i]) ids.push_back(sym[i]);
    if (piece.size() > 256) return ids;   // long pieces are rare: not worth the cache's memory
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() > 200000) cache.clear();
    cache.emplace(piece, ids);
    return ids;
  }

  void encode_plain(const std::string& raw, std::vector<int64_t>& out) const {
    if (raw.empty()) return;
    const std::string text = nfc ? gym::tokenizer::nfc(raw) : raw;
    std::vector<std::string> pieces;
    regex->split(text, pieces);
    for (const auto& p : pieces) {
      auto ids = bpe(p);
      out.insert(out.end(), ids.begin(), ids.end());
    }
  }
};

std::string nfc(const std::string& text) {
  // By length, not NUL-terminated: a text with NUL bytes is normalised (and tokenized) whole.
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                                            &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (len < 0 || !out) return text;   // invalid UTF-8: kept as bytes
  std::string s(reinterpret_cast<char*>(out), static_cast<size_t>(len));
  std::free(out);
  return s;
}

Tokenizer Tokenizer::from_dir(const std::filesystem::path& dir) {
  const auto tj = dir / "tokenizer.json";
  if (!std::filesystem::exists(tj)) config_error("model folder '{}' has no tokenizer.json", dir.string());
  nlohmann::json t, c = nlohmann::json::object();
  try {
    t = parse_json(read_file(tj));
    if (std::filesystem::exists(dir / "tokenizer_config.json")) c = parse_json(read_file(dir / "tokenizer_config.json"));
  } catch (const nlohmann::json::exception& e) {   // parse_error, and out_of_range for a number like 1e999
    config_error("{}: invalid JSON: {}", dir.string(), e.what());
  }
  return from_json(t, c, tj.string());
}

Tokenizer Tokenizer::from_json(const nlohmann::json& t, const nlohmann::json& cfg, const std::string& source) {
  return json_reader(source, [&] { return from_json_unchecked(t, cfg, source); });
}

namespace {
// A token id of tokenizer.json: an integer in [0, 2^22). get<int64_t>() of a float such as 2.3e53
// is undefined behaviour (tokenizer_fuzz), a negative id would index id_to_token below 0, and a
// huge one would size it (real vocabularies are < 300 000).
constexpr int64_t kMaxTokenId = (int64_t{1} << 22) - 1;
int64_t token_id(const nlohmann::json& v, const std::string& source, const std::string& token) {
  if (!v.is_number_integer()) config_error("{}: the id of token '{}' is not an integer: {}", source, token, v.dump());
  if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(kMaxTokenId) : (v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxTokenId))
    config_error("{}: the id of token '{}' is {}, outside 0 .. {}", source, token, v.dump(), kMaxTokenId);
  return v.get<int64_t>();
}
}  // namespace

Tokenizer Tokenizer::from_json_unchecked(const nlohmann::json& t, const nlohmann::json& cfg, const std::string& source) {
  auto impl = std::make_shared<Impl>();
  // normalizer: null or NFC
  if (t.contains("normalizer") && !t["normalizer"].is_null()) {
    const std::string type = t["normalizer"].value("type", "");
    if (type != "NFC") config_error("{}: normalizer type '{}' is not supported (NFC or none)", source, type);
    impl->nfc = true;
  }
  // pre_tokenizer: Sequence[Split(regex, Isolated), ByteLevel(use_regex false)] or ByteLevel(use_regex true)
  std::string pattern;
  const auto& pre = t.value("pre_tokenizer", nlohmann::json());
  auto check_byte_level = [&](const nlohmann::json& p) {
    if (p.value("add_prefix_space", false)) config_error("{}: ByteLevel add_prefix_space true is not supported", source);
    if (p.value("use_regex", true)) pattern = kGpt2Pattern;
  };
  if (pre.is_object() && pre.value("type", "") == "Sequence") {
    for (const auto& p : pre.at("pretokenizers")) {
      const std::string type = p.value("type", "");
      if (type == "Split") {
        if (p.value("behavior", "") != "Isolated" || p.value("invert", false))
          config_error("{}: Split pre-tokenizer with behavior '{}' is not supported (Isolated)", source, p.value("behavior", ""));
        if (!p.contains("pattern") || !p["pattern"].contains("Regex"))
          config_error("{}: Split pre-tokenizer needs a Regex pattern", source);
        pattern = p.at("pattern").at("Regex").get<std::string>();
      } else if (type == "ByteLevel") {
        if (p.value("use_regex", true) && !pattern.empty()) config_error("{}: two regex pre-tokenizers are not supported", source);
        check_byte_level(p);
      } else {
        config_error("{}: pre_tokenizer type '{}' is not supported (Split + ByteLevel)", source, type);
      }
    }
  } else if (pre.is_object() && pre.value("type", "") == "ByteLevel") {
    check_byte_level(pre);
  } else {
    config_error("{}: pre_tokenizer '{}' is not supported (byte-level BPE tokenizers only)", source,
                 pre.is_object() ? pre.value("type", "?") : pre.dump());
  }
  if (pattern.empty()) config_error("{}: no pre-tokenizer regex", source);
  impl->regex = std::make_unique<Regex>(pattern, source);
  // model: BPE
  const auto& m = t.at("model");   // at(): a missing key is an error (operator[] on a const json is undefined)
  if (m.value("type", "BPE") != "BPE") config_error("{}: model type '{}' is not supported (BPE)", source, m.value("type", ""));
  if (m.value("byte_fallback", false)) config_error("{}: BPE byte_fallback is not supported", source);
  if (m.contains("dropout") && !m.at("dropout").is_null()) config_error("{}: BPE dropout is not supported", source);
  if (!m.value("continuing_subword_prefix", nlohmann::json("")).is_null() && m.value("continuing_subword_prefix", std::string()) != "")
    config_error("{}: continuing_subword_prefix is not supported", source);
  if (const auto& dec = t.value("decoder", nlohmann::json()); dec.is_object() && dec.value("type", "") != "ByteLevel")
    config_error("{}: decoder type '{}' is not supported (ByteLevel)", source, dec.value("type", ""));
  int64_t max_id = -1;
  for (auto it = m.at("vocab").begin(); it != m.at("vocab").end(); ++it) {
    const int64_t id = token_id(*it, source, it.key());
    impl->vocab[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  Tokenizer tok;
  for (const auto& a : t.value("added_tokens", nlohmann::json::array())) {
    const std::string content = a.at("content").get<std::string>();
    AddedToken at{token_id(a.at("id"), source, content), content, a.value("special", false)};
    tok.added_.push_back(at);
    impl->added_special[at.id] = at.special;
    impl->vocab[at.content] = at.id;
    max_id = std::max(max_id, at.id);
  }
  // Merges as ids, once the vocabulary is complete (added tokens included, as the symbols were looked
  // up before). A merge whose parts or result are not in the vocabulary is an error, as in HF
  // tokenizers (MergeTokenOutOfVocabulary); the first of two equal pairs keeps its rank.
  auto id_of = [&](const std::string& sym, const std::string& a, const std::string& b) -> int32_t {
    auto it = impl->vocab.find(sym);
    if (it == impl->vocab.end()) config_error("{}: merge '{} {}': '{}' is not in the vocabulary", source, a, b, sym);
    return static_cast<int32_t>(it->second);
  };
  int32_t rank = 0;
  for (const auto& mg : m.at("merges")) {
    std::string a, b;
    if (mg.is_array()) {
      a = mg.at(0).get<std::string>(), b = mg.at(1).get<std::string>();
    } else {
      const std::string s = mg.get<std::string>();
      const auto sp = s.find(' ');
      if (sp == std::string::npos) config_error("{}: merge '{}' is not \"a b\"", source, s);
      a = s.substr(0, sp), b = s.substr(sp + 1);
    }
    const auto key = static_cast<uint64_t>(static_cast<uint32_t>(id_of(a, a, b))) << 32 | static_cast<uint32_t>(id_of(b, a, b));
    impl->merges.emplace(key, std::make_pair(rank++, id_of(a + b, a, b)));
  }
  const auto& bm = ByteMap::get();
  for (int b = 0; b < 256; ++b) {
    auto it = impl->vocab.find(bm.to_unicode[static_cast<size_t>(b)]);
    impl->byte_id[static_cast<size_t>(b)] = it == impl->vocab.end() ? -1 : static_cast<int32_t>(it->second);
  }
  for (const auto& a : tok.added_)
    if (!a.content.empty()) impl->added_first[static_cast<unsigned char>(a.content[0])] = true;
  impl->added_by_length = tok.added_;
  std::stable_sort(impl->added_by_length.begin(), impl->added_by_length.end(),
                   [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });
  impl->id_to_token.assign(static_cast<size_t>(max_id + 1), "");
  for (const auto& [s, id] : impl->vocab) impl->id_to_token[static_cast<size_t>(id)] = s;
  tok.impl_ = impl;
  auto lookup = [&](const char* key, const char* fallback) -> int64_t {
    std::string name = cfg.contains(key) ? token_content(cfg[key]) : "";
    if (name.empty()) name = fallback;
    auto id = tok.token_to_id(name);
    return id ? *id : -1;
  };
  tok.eos_id_ = lookup("eos_token", "<|im_end|>");
  tok.pad_id_ = lookup("pad_token", "<|endoftext|>");
  if (tok.pad_id_ < 0) tok.pad_id_ = tok.eos_id_;
  return tok;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int64_t> out;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    if (!impl_->added_first[static_cast<unsigned char>(text[i])]) {   // no added token starts with this byte
      ++i;
      continue;
    }
    const AddedToken* hit = nullptr;
    for (const auto& a : impl_->added_by_length)
      if (!a.content.empty() && text.compare(i, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    if (!hit) {
      ++i;
      continue;
    }
    impl_->encode_plain(text.substr(start, i - start), out);
    out.push_back(hit->id);
    i += hit->content.size();
    start = i;
  }
  impl_->encode_plain(text.substr(start), out);
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const auto& bm = ByteMap::get();
  std::string bytes;
  for (int64_t id : ids) {
    if (id < 0 || id >= static_cast<int64_t>(impl_->id_to_token.size())) continue;
    auto sp = impl_->added_special.find(id);
    if (sp != impl_->added_special.end()) {
      if (!(skip_special_tokens && sp->second)) bytes += impl_->id_to_token[static_cast<size_t>(id)];
      continue;
    }
    const std::string& tok = impl_->id_to_token[static_cast<size_t>(id)];
    size_t k = 0;
    while (k < tok.size()) {
      uint32_t cp;
      const size_t before = k;
      if (!next_code_point(tok, k, cp)) {
        bytes.push_back(tok[k++]);
        continue;
      }
      auto it = bm.from_unicode.find(cp);
      if (it != bm.from_unicode.end()) bytes.push_back(static_cast<char>(it->second));
      else bytes.append(tok, before, k - before);
    }
  }
  return utf8_replace_invalid(bytes);
}

std::optional<int64_t> Tokenizer::token_to_id(const std::string& token) const {
  auto it = impl_->vocab.find(token);
  if (it == impl_->vocab.end()) return std::nullopt;
  return it->second;
}

std::string Tokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= static_cast<int64_t>(impl_->id_to_token.size())) return "";
  return impl_->id_to_token[static_cast<size_t>(id)];
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->id_to_token.size()); }

bool Tokenizer::is_special(int64_t id) const {
  auto it = impl_->added_special.find(id);
  return it != impl_->added_special.end() && it->second;
}

}  // namespace gym::tokenizer
