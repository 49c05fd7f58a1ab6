// tokenizer.json + tokenizer_config.json loading (tokenizer/tokenizer.cpp) and encoding a text with
// what loaded, then decoding the ids. Input: tokenizer.json \0 tokenizer_config.json \0 text.
#include "fuzz_util.h"
#include "gym/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& dir = gym::fuzz::scratch("tokenizer");
  const auto parts = gym::fuzz::split(data, size, 3);
  gym::fuzz::write(dir / "tokenizer.json", parts[0]);
  gym::fuzz::write(dir / "tokenizer_config.json", parts[1]);
  gym::fuzz::expect_clean([&] {
    const auto tok = gym::tokenizer::Tokenizer::from_dir(dir);
    const auto ids = tok.encode(parts[2]);
    (void)tok.decode(ids);
    (void)tok.decode(ids, /*skip_special_tokens=*/true);
    for (auto id : ids) (void)tok.id_to_token(id);
  });
  return 0;
}
