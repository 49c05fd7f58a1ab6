// gym bench tokenizer: encoding speed (MB/s on one thread) of a large varied text.
#include <chrono>
#include <iostream>

#include "cli/bench.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/io/hf_dir.h"
#include "gym/tokenizer/tokenizer.h"

namespace gym::cli {

namespace {

// Deterministic pseudo-random text (an LCG picks the pieces), so BPE sees a realistic spread of
// words rather than one repeated sentence.
struct Lcg {
  uint64_t x = 88172645463325252ULL;
  uint32_t next(uint32_t n) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>((x >> 33) % n);
  }
};

// English prose with punctuation and numbers, `bytes` long, newlines only when `lines`.
std::string english_text(size_t bytes, bool lines) {
  static const char* words[] = {"the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by",
                                "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had",
                                "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if",
                                "more", "when", "will", "would", "who", "so", "no", "model", "training", "gradient", "learning",
                                "language", "however", "between", "through", "important", "information", "development",
                                "government", "understanding", "particularly", "environment", "performance", "experiment",
                                "Tokenization", "Transformers", "Qwen", "running", "quickly", "beautiful", "couldn't", "it's"};
  const uint32_t nw = sizeof(words) / sizeof(words[0]);
  Lcg r;
  std::string t;
  t.reserve(bytes + 64);
  while (t.size() < bytes) {
    t += words[r.next(nw)];
    const auto k = r.next(40);
    if (k == 0) t += ". ";
    else if (k == 1) t += ", ";
    else if (k == 2) t += " " + std::to_string(r.next(100000)) + " ";
    else if (k == 3 && lines) t += ".\n";
    else t += ' ';
  }
  t.resize(bytes);
  return t;
}

// CJK text: common ideographs (U+4E00 + 0..2999) with full-width punctuation, one line.
std::string cjk_text(size_t bytes) {
  Lcg r;
  std::string t;
  t.reserve(bytes + 8);
  while (t.size() + 3 <= bytes) {
    const auto k = r.next(24);
    const uint32_t cp = k == 0 ? 0xFF0C : (k == 1 ? 0x3002 : 0x4E00 + r.next(3000));   // ，。 or an ideograph
    t += static_cast<char>(0xE0 | (cp >> 12));
    t += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    t += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return t;
}

std::string mixed_text(size_t bytes) {
  // prose, code, digits, CJK, emoji; repeated with a counter
  const std::string base =
      "The quick brown fox jumps over the lazy dog. def f(x):\n\treturn x**2  # comment\n"
      "价格是 1234.56 元，数量 42。 Émoji 🤗 naïve café. <think>reasoning</think> ";
  std::string text;
  for (int i = 0; text.size() < bytes; ++i) text += base + std::to_string(i) + " word" + std::to_string(i % 997) + "\n";
  return text;
}

nlohmann::json encode_timed(const tokenizer::Tokenizer& tok, const std::string& text) {
  const auto s = std::chrono::steady_clock::now();
  const auto ids = tok.encode(text);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
  return {{"bytes", text.size()}, {"tokens", ids.size()}, {"seconds", secs}, {"mb_per_s", text.size() / 1e6 / secs},
          {"tokens_per_s", ids.size() / secs}};
}

}  // namespace

void add_bench_tokenizer(CLI::App& bench) {
  auto model = std::make_shared<std::string>((cache_dir() / "tokenizer-qwen3").string());
  auto mb = std::make_shared<double>(10.0);
  auto* cmd = bench.add_subcommand("tokenizer", "Encoding throughput of a tokenizer.json on one thread: English, CJK, mixed");
  cmd->add_option("--model", *model, "Folder with tokenizer.json (default: the cached Qwen3 tokenizer)");
  cmd->add_option("--mb", *mb, "Megabytes of text per corpus");
  cmd->callback([model, mb] {
    const auto tok = tokenizer::Tokenizer::from_dir(io::resolve_model_dir(*model));
    const auto bytes = static_cast<size_t>(*mb * 1e6);
    // english: lines of prose; english_one_line and cjk: one line of `mb` MB each (linear time on
    // a single long pre-token run); mixed: the earlier prose + code + CJK + emoji corpus.
    nlohmann::json out = {{"bench", "tokenizer"}, {"model", *model}};
    out["english"] = encode_timed(tok, english_text(bytes, true));
    out["english_one_line"] = encode_timed(tok, english_text(bytes, false));
    out["cjk"] = encode_timed(tok, cjk_text(bytes));
    out["mixed"] = encode_timed(tok, mixed_text(bytes));
    out["mb_per_s"] = out["mixed"]["mb_per_s"];   // the key of earlier versions
    std::cout << out.dump() << "\n";
  });
}

}  // namespace gym::cli
