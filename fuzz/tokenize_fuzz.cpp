// Encoding arbitrary bytes with a fixed, valid tokenizer (the real Qwen3 tokenizer.json when
// scripts/setup.sh cached it, else gym's byte-level one): NFC, the Split regex, added tokens, BPE.
// Every id is inside the vocabulary; ASCII text decodes back to itself.
#include <cstdlib>

#include "fuzz_util.h"
#include "gym/core/fs.h"
#include "gym/tokenizer/bytes_tokenizer.h"
#include "gym/tokenizer/tokenizer.h"

namespace {
const gym::tokenizer::Tokenizer& tokenizer() {
  static const gym::tokenizer::Tokenizer tok = [] {
    auto dir = gym::source_dir() / ".cache" / "tokenizer-qwen3";
    if (const char* d = std::getenv("GYM_FUZZ_TOKENIZER_DIR")) dir = d;
    if (!std::filesystem::exists(dir / "tokenizer.json")) {
      dir = gym::fuzz::scratch("tokenize");
      gym::tokenizer::write_bytes_tokenizer(dir);
    }
    return gym::tokenizer::Tokenizer::from_dir(dir);
  }();
  return tok;
}
}  // namespace

// The real tokenizer.json is 11 MB: loaded once before fuzzing starts, outside the per-input timeout.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& tok = tokenizer();
  const std::string text(reinterpret_cast<const char*>(data), size);
  gym::fuzz::expect_clean([&] {
    const auto ids = tok.encode(text);
    for (auto id : ids)
      if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
    // ASCII text is its own NFC form and byte-level BPE is lossless: it must round-trip.
    bool ascii = true;
    for (unsigned char c : text) ascii = ascii && c < 0x80;
    if (ascii && tok.decode(ids) != text) __builtin_trap();
    (void)tok.decode(ids, /*skip_special_tokens=*/true);
  });
  return 0;
}
