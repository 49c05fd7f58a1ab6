#include <gtest/gtest.h>

#include <filesystem>

#include "cli_util.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/tokenizer/bytes_tokenizer.h"
#include "gym/tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using gym::tokenizer::Tokenizer;

namespace {
const fs::path kQwenDir = gym::cache_dir() / "tokenizer-qwen3";

const Tokenizer& qwen() {
  static const Tokenizer t = Tokenizer::from_dir(kQwenDir);
  return t;
}
}  // namespace

#define REQUIRE_QWEN_TOKENIZER() \
  if (!fs::exists(kQwenDir / "tokenizer.json")) GTEST_SKIP() << "run scripts/setup.sh to cache the Qwen3 tokenizer"

TEST(TokenizerQwen3, WorkedExamplesGiveIdenticalIds) {
  REQUIRE_QWEN_TOKENIZER();
  const auto examples = nlohmann::json::parse(gym::read_file(fs::path(GYM_TEST_DATA) / "tokenizer" / "tokenizer_examples.json"));
  int checked = 0;
  for (const auto& ex : examples) {
    if (!ex.contains("text") || !ex.contains("ids")) continue;
    const std::string text = ex["text"].get<std::string>();
    EXPECT_EQ(qwen().encode(text), ex["ids"].get<std::vector<int64_t>>()) << text;
    if (ex.contains("tokens")) {
      std::vector<std::string> toks;
      for (auto id : qwen().encode(text)) toks.push_back(qwen().id_to_token(id));
      EXPECT_EQ(toks, ex["tokens"].get<std::vector<std::string>>()) << text;
    }
    ++checked;
  }
  EXPECT_GE(checked, 6);
  EXPECT_EQ(qwen().eos_id(), 151645);
  EXPECT_EQ(qwen().pad_id(), 151643);
}

TEST(TokenizerQwen3, DecodeOfEncodeIsNfcOnAVariedCorpus) {
  REQUIRE_QWEN_TOKENIZER();
  std::vector<std::string> corpus = {
      "日本語のテキストと中文混合，한국어도 있습니다。",
      "Family: \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 flags \xF0\x9F\x87\xAB\xF0\x9F\x87\xB7 skin \xF0\x9F\x91\x8B\xF0\x9F\x8F\xBD",
      "e\xCC\x81 a\xCC\x8A o\xCC\x88\xCC\x81 combining marks; Hangul \xE1\x84\x80\xE1\x85\xA1",
      "\t\t tabs\n\n\n  newlines \r\n\r\n   trailing   ",
      "int main() {\n    return std::accumulate(v.begin(), v.end(), 0) << 2; // ok\n}\n",
      "31415926535897932384626433832795028841971693993751",
      "<|im_start|>user\nhi<|im_end|><think>\n</think><tool_call>{}</tool_call><|endoftext|><|fim_prefix|>",
      "I'M SHOUTING, you're whispering; they'VE gone", "   ", "",
  };
  for (const auto& a : qwen().added_tokens()) corpus.push_back("x" + a.content + "y " + a.content);
  for (const auto& text : corpus) {
    const auto ids = qwen().encode(text);
    EXPECT_EQ(qwen().decode(ids), gym::tokenizer::nfc(text)) << text;
  }
  // Invalid UTF-8 in a decoded byte sequence becomes U+FFFD: the byte token for 0xE4 (shown as
  // "ä") is the first byte of a 3-byte character, alone it is invalid.
  const int64_t lone_lead = *qwen().token_to_id("\xC3\xA4");
  EXPECT_EQ(qwen().decode({lone_lead}), "\xEF\xBF\xBD");
  EXPECT_EQ(qwen().decode({lone_lead, qwen().encode("a")[0]}), "\xEF\xBF\xBD" "a");
  EXPECT_EQ(qwen().decode({151644}, true), "");     // special tokens skipped on request
  EXPECT_EQ(qwen().decode({151667}, true), "<think>");   // <think> is not special
}

TEST(TokenizerBytes, WritesALoadableByteTokenizer) {
  const auto dir = fs::temp_directory_path() / "gym_bytes_tok";
  fs::remove_all(dir);
  gym::tokenizer::write_bytes_tokenizer(dir);
  const auto t = Tokenizer::from_dir(dir);
  EXPECT_EQ(t.vocab_size(), 265);
  const std::string text = "<|im_start|>user\n3+4=?<|im_end|>\nnaïve 🤗";
  const auto ids = t.encode(text);
  EXPECT_EQ(ids[0], *t.token_to_id("<|im_start|>"));
  EXPECT_EQ(ids[1], 'u');
  EXPECT_EQ(t.decode(ids), text);
  EXPECT_EQ(t.eos_id(), *t.im_end_id());
  EXPECT_EQ(t.pad_id(), *t.token_to_id("<|endoftext|>"));
}

TEST(TokenizerErrors, UnsupportedTypesAreClearErrors) {
  nlohmann::json t = {{"normalizer", {{"type", "NFKC"}}}, {"model", {{"type", "BPE"}}}};
  try {
    Tokenizer::from_json(t, {}, "x/tokenizer.json");
    FAIL();
  } catch (const gym::Error& e) {
    EXPECT_NE(std::string(e.what()).find("normalizer type 'NFKC' is not supported"), std::string::npos);
  }
  t = {{"pre_tokenizer", {{"type", "Whitespace"}}}, {"model", {{"type", "BPE"}}}};
  EXPECT_THROW(Tokenizer::from_json(t, {}, "x"), gym::Error);
}

// Merges work on vocabulary ids: a merge whose part or result is not in the vocabulary is an error
// at load naming the merge (as HF tokenizers' MergeTokenOutOfVocabulary), not at some later encode.
TEST(TokenizerErrors, AMergeOutsideTheVocabularyIsAnErrorAtLoad) {
  nlohmann::json vocab = {{"a", 0}, {"b", 1}, {"ab", 2}};
  nlohmann::json t = {{"pre_tokenizer", {{"type", "ByteLevel"}, {"use_regex", true}}},
                      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b"}}}}};
  EXPECT_NO_THROW(Tokenizer::from_json(t, {}, "x/tokenizer.json"));
  for (const char* merge : {"a c", "b a"}) {   // 'c' is no token; 'ba' is not either
    t["model"]["merges"] = {merge};
    try {
      Tokenizer::from_json(t, {}, "x/tokenizer.json");
      ADD_FAILURE() << merge;
    } catch (const gym::Error& e) {
      EXPECT_NE(std::string(e.what()).find("x/tokenizer.json: merge '" + std::string(merge) + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(TokenizerCli, TokenizeAndDecode) {
  REQUIRE_QWEN_TOKENIZER();
  auto r = gym::test::run_gym("tokenize --model " + kQwenDir.string() + " --text 'Hello world' --tokens");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_EQ(j["ids"], nlohmann::json({9707, 1879}));
  EXPECT_EQ(j["tokens"][1], "Ġworld");
  r = gym::test::run_gym("tokenize --model " + kQwenDir.string() + " --decode --text '[9707, 1879]'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("{\"text\":\"Hello world\"}"), std::string::npos);
  r = gym::test::run_gym("tokenize --model /nonexistent/model --text x");
  EXPECT_EQ(r.exit_code, 2);
}

TEST(TokenizerQwen3, TextWithNulBytesIsTokenizedWhole) {
  REQUIRE_QWEN_TOKENIZER();
  const std::string text("before\0after\0\0end", 17);
  const auto ids = qwen().encode(text);
  EXPECT_EQ(qwen().decode(ids), text);
  EXPECT_GT(ids.size(), qwen().encode("before").size() + 2);
  EXPECT_EQ(gym::tokenizer::nfc(text), text);
}

TEST(TokenizerQwen3, LongLinesAndLongWordsTokenizeAndRoundTrip) {
  // Regression for hostile inputs: a 50 MB line of words, and a 2 MB single pre-token (one run of
  // letters, merged by the heap in O(n log n); the former O(n²) merge loop took minutes on 100 KB).
  REQUIRE_QWEN_TOKENIZER();
  // (The pre-tokenizer once re-checked the whole line's UTF-8 at every match: quadratic in its length.)
  std::vector<std::string> words;   // 1000 words, so that the BPE cache serves most pieces
  uint64_t x = 42;
  for (int w = 0; w < 1000; ++w) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    std::string word = w % 7 == 0 ? "42" : "";
    for (int i = 0, len = 1 + static_cast<int>((x >> 33) % 9); i < len; ++i) word += static_cast<char>('a' + ((x >> (i * 5 + 3)) % 26));
    words.push_back(word + (w % 5 == 0 ? ", " : " "));
  }
  std::string line;
  line.reserve((50u << 20) + 64);
  for (size_t i = 0; line.size() < (50u << 20); ++i) line += words[(i * 7919) % words.size()];
  auto ids = qwen().encode(line);
  EXPECT_GT(ids.size(), line.size() / 8);
  EXPECT_EQ(qwen().decode(ids), line);
  std::string word;
  for (size_t i = 0; i < (2u << 20); ++i) word += static_cast<char>('a' + (i * 7 + i / 3) % 26);
  ids = qwen().encode(word);
  EXPECT_EQ(qwen().decode(ids), word);
  EXPECT_LT(ids.size(), word.size());
}
