#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli_util.h"
#include "test_util.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/tokenizer/bytes_tokenizer.h"
#include "gym/tokenizer/chat_template.h"
#include "gym/tokenizer/tokenizer.h"

using namespace gym::tokenizer;

namespace {
ChatMessage msg(const std::string& role, const std::string& content) {
  ChatMessage m;
  m.role = role;
  m.content = content;
  return m;
}
}  // namespace

TEST(TokenizerChat, SpecWorkedExampleByteForByteAndIds) {
  ChatOptions o;
  o.add_generation_prompt = true;
  o.enable_thinking = false;
  const std::string s = render_chat("qwen3", {msg("system", "You are a helpful assistant."), msg("user", "What is 2+2?")}, o);
  EXPECT_EQ(s,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n");
  const auto dir = gym::cache_dir() / "tokenizer-qwen3";
  if (!std::filesystem::exists(dir / "tokenizer.json")) GTEST_SKIP() << "Qwen3 tokenizer not cached";
  const auto tok = Tokenizer::from_dir(dir);
  const std::vector<int64_t> want = {151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 3838,
                                     374, 220, 17, 10, 17, 30, 151645, 198, 151644, 77091, 198, 151667, 271, 151668, 271};
  EXPECT_EQ(tok.encode(s), want);
}

TEST(TokenizerChat, EarlierReasoningIsDroppedAndTheCurrentTurnKeepsIt) {
  std::vector<ChatMessage> m = {msg("user", "q1"), msg("assistant", "<think>\nr1\n</think>\n\na1"), msg("user", "q2"),
                                msg("assistant", "<think>\nr2\n</think>\n\na2")};
  const std::string s = render_chat("qwen3", m, {});
  EXPECT_EQ(s,
            "<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nr2\n</think>\n\na2<|im_end|>\n");
  ChatOptions think;
  think.add_generation_prompt = true;
  EXPECT_TRUE(render_chat("qwen3", {msg("user", "hi")}, think).size() > 0);
  EXPECT_EQ(render_chat("qwen3", {msg("user", "hi")}, think), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(TokenizerChat, ToolsToolCallsAndGroupedResponses) {
  ChatOptions o;
  o.tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "add", "parameters": {"a": 1}}}])");
  ChatMessage call = msg("assistant", "");
  call.tool_calls = nlohmann::ordered_json::parse(R"([{"function": {"name": "add", "arguments": {"a": 1, "b": "é"}}}])");
  std::vector<ChatMessage> m = {msg("system", "S"), msg("user", "add"), call, msg("tool", "3"), msg("tool", "4")};
  const std::string s = render_chat("qwen3", m, o);
  EXPECT_NE(s.find("<|im_start|>system\nS\n\n# Tools\n"), std::string::npos);
  EXPECT_NE(s.find("\n{\"type\": \"function\", \"function\": {\"name\": \"add\", \"parameters\": {\"a\": 1}}}\n</tools>"),
            std::string::npos);
  EXPECT_NE(s.find("<|im_start|>assistant\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": \"é\"}}\n</tool_call><|im_end|>\n"),
            std::string::npos);
  EXPECT_NE(s.find("<|im_start|>user\n<tool_response>\n3\n</tool_response>\n<tool_response>\n4\n</tool_response><|im_end|>\n"),
            std::string::npos);
}

TEST(TokenizerChat, NothinkAndEmptyTemplates) {
  ChatOptions o;
  o.add_generation_prompt = true;
  EXPECT_EQ(render_chat("qwen3_nothink", {msg("user", "hi")}, o), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_chat("empty", {msg("user", "3+4=")}, o), "3+4=");
  EXPECT_THROW(render_chat("llama3", {}, o), gym::Error);
}

TEST(TokenizerChat, LlamaFactorySftRendering) {
  auto pairs = render_sft("qwen3", "S", {msg("user", "q1"), msg("assistant", "<think>\nr\n</think>\n\na1"), msg("user", "q2"), msg("assistant", "a2")},
                          true, "");
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].prompt, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(pairs[0].response, "<think>\n\n</think>\n\na1<|im_end|>\n");   // history CoT removed
  EXPECT_EQ(pairs[1].prompt, "<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(pairs[1].response, "<think>\n\n</think>\n\na2<|im_end|>\n");   // empty thought, trained
  auto off = render_sft("qwen3", "", {msg("user", "q"), msg("assistant", "<think>\nr\n</think>\n\na")}, false, "");
  EXPECT_EQ(off[0].prompt, "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  EXPECT_EQ(off[0].response, "a<|im_end|>\n");
  auto plain = render_sft("qwen3_nothink", "", {msg("user", "q"), msg("assistant", "a")}, true, "");
  EXPECT_EQ(plain[0].response, "a<|im_end|>\n");
}

// ../shared/fixtures/chat_template_cases.json (copied to tests/data/tokenizer): 20 conversations and
// the text transformers' apply_chat_template renders with the real Qwen3 template. `gym tokenize
// --chat` must print exactly that text for every one.
TEST(TokenizerChat, TokenizeChatEqualsTransformersOnEveryFixtureCase) {
  const auto cases = nlohmann::ordered_json::parse(gym::read_file(std::filesystem::path(GYM_TEST_DATA) / "tokenizer" / "chat_template_cases.json"));
  ASSERT_EQ(cases.size(), 20u);
  const auto d = gym::test::fresh_dir("tokenize_chat");
  auto model = gym::cache_dir() / "tokenizer-qwen3";
  if (!std::filesystem::exists(model / "tokenizer.json")) {
    model = d / "bytes";
    write_bytes_tokenizer(model);
  }
  {
    std::ofstream rows(d / "rows.jsonl");
    for (auto c : cases) {
      c.erase("text");
      rows << c.dump() << "\n";
    }
  }
  auto r = gym::test::run_gym("tokenize --model " + model.string() + " --chat --input " + (d / "rows.jsonl").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream out(r.output);
  std::string line;
  size_t i = 0;
  while (std::getline(out, line) && i < cases.size()) {
    if (line.empty() || line[0] != '{') continue;   // log lines
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["text"].get<std::string>(), cases[i]["text"].get<std::string>()) << "case " << i;
    EXPECT_FALSE(j["ids"].empty()) << "case " << i;
    ++i;
  }
  EXPECT_EQ(i, cases.size());
  std::ofstream(d / "bad.jsonl") << R"({"messages": [{"content": "no role"}]})" << "\n";
  auto bad = gym::test::run_gym("tokenize --model " + model.string() + " --chat --input " + (d / "bad.jsonl").string());
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("bad.jsonl:1: messages[0]: needs a string 'role'"), std::string::npos) << bad.output;
}
