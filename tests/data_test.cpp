#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/data/dataset.h"
#include "gym/data/sampler.h"
#include "gym/tokenizer/bytes_tokenizer.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {
fs::path tmp(const std::string& name) {
  auto d = fs::temp_directory_path() / ("gym_data_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
void write(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

const tokenizer::Tokenizer& bytes_tok() {
  static const tokenizer::Tokenizer t = [] {
    auto d = fs::temp_directory_path() / "gym_data_tok";
    tokenizer::write_bytes_tokenizer(d);
    return tokenizer::Tokenizer::from_dir(d);
  }();
  return t;
}
}  // namespace

TEST(DataFormats, ShippedDatasetsParse) {
  const fs::path dir = source_dir() / "data";
  auto alpaca = data::read_dataset(data::resolve_dataset("alpaca_demo", dir), false);
  ASSERT_EQ(alpaca.size(), 40u);
  EXPECT_EQ(alpaca[0].system, "You are a concise assistant.");
  ASSERT_EQ(alpaca[0].turns.size(), 4u);   // history pair + the instruction
  EXPECT_EQ(alpaca[0].turns[0].content, "Hi!");
  EXPECT_EQ(alpaca[1].turns[0].content, "Translate to French.\nGood morning");   // instruction + "\n" + input
  auto sharegpt = data::read_dataset(data::resolve_dataset("sharegpt_demo", dir), false);
  EXPECT_EQ(sharegpt.size(), 40u);
  EXPECT_EQ(sharegpt[0].turns.back().role, "assistant");
  auto openai = data::read_dataset(data::resolve_dataset("openai_demo", dir), false);
  EXPECT_EQ(openai.size(), 20u);
  EXPECT_EQ(openai[0].system, "You are a concise assistant.");
  auto rl = data::read_dataset(data::resolve_dataset("arithmetic_rl", dir), true);
  EXPECT_EQ(rl.size(), 512u);
  EXPECT_EQ(rl[0].turns.size(), 1u);
  EXPECT_TRUE(rl[0].extra.contains("answer"));   // extra columns reach the rewards
}

TEST(DataFormats, PlainJsonlPathsAndTrlPrompts) {
  auto d = tmp("plain");
  write(d / "p.jsonl", R"({"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "2+2="}], "answer": "4"}
{"prompt": "3+3=", "answer": "6", "difficulty": 1}
)");
  auto rows = data::read_dataset(data::resolve_dataset((d / "p.jsonl").string(), d), true);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].system, "S");
  EXPECT_EQ(rows[0].turns[0].content, "2+2=");
  EXPECT_EQ(rows[1].extra["difficulty"], 1);
  EXPECT_EQ(rows[1].extra["answer"], "6");
}

// LLaMA-Factory's csv loader: a header row, RFC 4180 quoting (delimiters, newlines and "" inside
// quotes), CRLF, a BOM, columns mapping through dataset_info.json; TSV the same with tabs. A record
// with the wrong field count is skipped and counted; Parquet is a clear error saying how to convert.
TEST(DataFormats, CsvAndTsvWithColumnsMappingAndParquetIsAClearError) {
  auto d = tmp("csv");
  write(d / "dataset_info.json", R"({"c": {"file_name": "qa.csv", "columns": {"prompt": "question", "response": "reply"}},
    "t": {"file_name": "qa.tsv"}, "p": {"file_name": "qa.parquet"}})");
  write(d / "qa.csv", "\xEF\xBB\xBFquestion,reply,answer\r\n"
                      "\"What is 2+2, roughly?\",\"It is \"\"4\"\"\nfor sure\",4\r\n"
                      "plain,text,5\r\n"
                      "too,many,fields,here\r\n"
                      "\r\n");
  auto rows = data::read_dataset(data::resolve_dataset("c", d), false);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].turns[0].content, "What is 2+2, roughly?");
  EXPECT_EQ(rows[0].turns[1].content, "It is \"4\"\nfor sure");
  EXPECT_EQ(rows[0].extra["answer"], "4");
  EXPECT_EQ(rows[1].turns[0].content, "plain");
  EXPECT_EQ(rows[1].source, (d / "qa.csv").string() + ":4");   // the quoted newline counts as a line

  write(d / "qa.tsv", "instruction\tinput\toutput\nAdd\t1 2\t3\nx\ty\n");
  rows = data::read_dataset(data::resolve_dataset("t", d), false);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].turns[0].content, "Add\n1 2");
  EXPECT_EQ(rows[0].turns[1].content, "3");
  // a plain path works as a dataset name too
  EXPECT_EQ(data::read_dataset(data::resolve_dataset((d / "qa.tsv").string(), d), false).size(), 1u);

  write(d / "qa.parquet", "PAR1");
  try {
    data::read_dataset(data::resolve_dataset("p", d), false);
    FAIL() << "a parquet file was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Parquet files need Apache Arrow"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("qa.jsonl"), std::string::npos) << e.what();
  }
  write(d / "dup.csv", "a,a\n1,2\n");
  EXPECT_THROW(data::read_dataset(data::resolve_dataset((d / "dup.csv").string(), d), false), Error);
}

TEST(DataFormats, MalformedRowsAreSkippedAndCounted) {
  auto d = tmp("bad");
  write(d / "dataset_info.json", R"({"sg": {"file_name": "sg.jsonl", "formatting": "sharegpt"}, "al": {"file_name": "al.jsonl"}})");
  write(d / "sg.jsonl", R"({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
{"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}]}
not json at all
{"conversations": [{"from": "human", "value": "q"}]}
{"conversations": [{"from": "human", "value": 3}, {"from": "gpt", "value": "a"}]}
)");
  write(d / "al.jsonl", R"({"instruction": "q", "output": "a"}
{"output": "a"}
)");
  EXPECT_EQ(data::read_dataset(data::resolve_dataset("sg", d), false).size(), 1u);   // order, JSON, count, type
  EXPECT_EQ(data::read_dataset(data::resolve_dataset("al", d), false).size(), 1u);   // missing column
  try {
    data::resolve_dataset("nope", d);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("known: al, sg"), std::string::npos) << e.what();
  }
  config::DataArgs args;
  args.dataset = {"al"};
  args.dataset_dir = d.string();
  write(d / "al.jsonl", "{\"output\": \"a\"}\n");
  EXPECT_THROW(data::load_datasets(args, false), Error);   // nothing usable left
}

TEST(DataFormats, LlamaFactoryRegistryParsesAndHubEntriesAreOffline) {
  auto d = tmp("lf");
  fs::copy_file(fs::path(GYM_TEST_DATA) / "data" / "lf_dataset_info.json", d / "dataset_info.json");
  write(d / "alpaca_en_demo.json", R"([{"instruction": "q", "input": "", "output": "a"}])");
  write(d / "glaive_toolcall_en_demo.json",
        R"([{"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "{}"}, {"from": "observation", "value": "r"}, {"from": "gpt", "value": "a"}], "tools": "[{\"name\": \"f\"}]"}])");
  EXPECT_EQ(data::read_dataset(data::resolve_dataset("alpaca_en_demo", d), false).size(), 1u);
  auto tool = data::read_dataset(data::resolve_dataset("glaive_toolcall_en_demo", d), false);
  ASSERT_EQ(tool.size(), 1u);
  EXPECT_EQ(tool[0].turns[2].role, "tool");
  EXPECT_EQ(tool[0].tools.size(), 1u);
  const auto info = nlohmann::json::parse(read_file(d / "dataset_info.json"));
  int hub = 0;
  for (auto it = info.begin(); it != info.end(); ++it) {
    if (!it->contains("hf_hub_url") && !it->contains("script_url") && !it->contains("ms_hub_url")) continue;
    ++hub;
    try {
      data::resolve_dataset(it.key(), d);
      ADD_FAILURE() << it.key();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not available offline"), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(hub, 5);
}

TEST(DataSplits, MaxSamplesShuffleAndValSizeAreDeterministic) {
  config::DataArgs args;
  args.dataset = {"arithmetic_rl", "arithmetic_sft"};
  args.dataset_dir = (source_dir() / "data").string();
  args.max_samples = 50;
  args.val_size = 0.1;
  auto a = data::load_datasets(args, true), b = data::load_datasets(args, true);
  EXPECT_EQ(a.train.size(), 90u);
  EXPECT_EQ(a.eval.size(), 10u);
  for (size_t i = 0; i < a.train.size(); ++i) EXPECT_EQ(a.train[i].source, b.train[i].source);
  args.seed = 7;
  auto c = data::load_datasets(args, true);
  int same = 0;
  for (size_t i = 0; i < a.train.size(); ++i) same += a.train[i].source == c.train[i].source;
  EXPECT_LT(same, 30);
}

TEST(DataEncode, LabelsMaskThePromptAndCutoffKeepsTheAnswer) {
  data::Conversation c;
  c.turns = {{"user", "What is 3+4?", "", false, nlohmann::ordered_json::array()},
             {"assistant", "7", "", false, nlohmann::ordered_json::array()}};
  data::RenderOptions o;
  o.template_name = "qwen3_nothink";
  auto ex = data::encode_sft(c, bytes_tok(), o);
  const std::string prompt = "<|im_start|>user\nWhat is 3+4?<|im_end|>\n<|im_start|>assistant\n";
  const auto prompt_ids = bytes_tok().encode(prompt);
  ASSERT_EQ(ex.input_ids.size(), prompt_ids.size() + 3);   // "7", <|im_end|>, "\n"
  for (size_t i = 0; i < prompt_ids.size(); ++i) EXPECT_EQ(ex.labels[i], -100);
  EXPECT_EQ(ex.labels[prompt_ids.size()], '7');
  EXPECT_EQ(ex.labels[prompt_ids.size() + 1], *bytes_tok().im_end_id());
  // A long prompt is cut so that the answer survives.
  c.turns[0].content = std::string(300, 'x');
  o.cutoff_len = 40;
  ex = data::encode_sft(c, bytes_tok(), o);
  EXPECT_LE(ex.input_ids.size(), 40u);
  EXPECT_EQ(ex.labels[ex.labels.size() - 3], '7');
  // RL prompts end with the generation prompt and are left-truncated.
  data::Conversation q;
  q.turns = {{"user", std::string(100, 'y') + "2+2=", "", false, nlohmann::ordered_json::array()}};
  auto p = data::encode_rl_prompt(q, bytes_tok(), o, 32);
  EXPECT_EQ(p.prompt_ids.size(), 32u);
  const std::string tail = "=<|im_end|>\n<|im_start|>assistant\n";
  const std::string text = bytes_tok().decode(p.prompt_ids);
  EXPECT_EQ(text.substr(text.size() - tail.size()), tail);
}

TEST(DataSampler, ResumesExactlyAndShards) {
  data::BatchSampler a(10, 3);
  std::vector<int64_t> first;
  for (int i = 0; i < 3; ++i) for (auto x : a.next(4)) first.push_back(x);
  data::BatchSampler b(10, 3);
  b.next(4);
  auto st = b.state();
  data::BatchSampler c(10, 3);
  c.restore(st, "trainer_state.json");
  // A state that no sampler of this data set wrote is a config error naming the file, never an
  // index outside the order (a position of -3 was a SIGSEGV).
  data::BatchSampler bad(10, 3);
  for (const char* s : {R"({"epoch": 0, "position": -3})", R"({"epoch": 0, "position": 11})", R"({"position": 1})", "null"})
    EXPECT_THROW(bad.restore(nlohmann::json::parse(s), "trainer_state.json"), Error) << s;
  auto rest = c.next(8);
  EXPECT_EQ(std::vector<int64_t>(first.begin() + 4, first.end()), rest);
  std::vector<int64_t> epoch0(first.begin(), first.begin() + 10);
  std::sort(epoch0.begin(), epoch0.end());
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(epoch0[static_cast<size_t>(i)], i);   // each example once per epoch
  data::BatchSampler r0(10, 3, 0, 2), r1(10, 3, 1, 2);
  auto s0 = r0.next(5), s1 = r1.next(5);
  std::vector<int64_t> both(s0);
  both.insert(both.end(), s1.begin(), s1.end());
  std::sort(both.begin(), both.end());
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(both[static_cast<size_t>(i)], i);
}
