// Inputs that once escaped gym's readers as something other than a gym::Error (an unknown
// exception ends gym with a bare message; an overflowing shape allocates at random). Each must now
// be one clean config error naming the file. New fuzzer findings (fuzz/, scripts/fuzz.sh) go here.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "test_util.h"
#include "gym/config/config.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/data/dataset.h"
#include "gym/io/safetensors.h"
#include "gym/lora/targets.h"
#include "gym/recipes/run_state.h"
#include "gym/tokenizer/bytes_tokenizer.h"
#include "gym/tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {

void write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// A safetensors file with this JSON header and `data` bytes.
std::string safetensors(const std::string& header, const std::string& data = "") {
  std::string h = header;
  while (h.size() % 8) h += ' ';
  std::string out(8, '\0');
  uint64_t n = h.size();
  std::memcpy(out.data(), &n, 8);
  return out + h + data;
}

// f() throws a config gym::Error whose message holds `needle`.
template <typename F>
void expect_config_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

// Found by checkpoint_fuzz: a number too large for a double (123e1234) makes nlohmann's parser
// throw out_of_range, not parse_error, and every reader caught only parse_error (std::terminate
// in the fuzzer, "gym: error: [json.exception.out_of_range.406] ..." exit 1 in gym).
TEST(FuzzRegression, NumbersTooLargeForADoubleAreInvalidJsonInEveryReader) {
  const auto d = test::fresh_dir("fuzzreg_number");
  // The fuzzer's input (trainer_state.json \0 .gym_manifest.json): its first part is the state.
  const auto crash = read_file(fs::path(GYM_TEST_DATA) / "fuzz" / "checkpoint_fuzz-number-overflow");
  write(d / "trainer_state.json", crash.substr(0, crash.find('\0')));
  expect_config_error([&] { recipes::read_run_state(d / "trainer_state.json"); }, "invalid JSON");
  write(d / "data.json", "[]");
  write(d / "dataset_info.json", R"({"x": {"file_name": "data.json", "num_samples": 1e999}})");
  expect_config_error([&] { data::resolve_dataset("x", d); }, "invalid JSON");
  tokenizer::write_bytes_tokenizer(d);
  write(d / "tokenizer_config.json", R"({"model_max_length": 1e999})");
  expect_config_error([&] { tokenizer::Tokenizer::from_dir(d); }, "invalid JSON");
  write(d / "st.safetensors", safetensors(R"({"__metadata__": {"a": "b"}, "t": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 4]}})",
                                          std::string(4, '\0')));
  expect_config_error([&] { io::SafeTensorsFile f(d / "st.safetensors"); }, "invalid JSON");
}

TEST(FuzzRegression, SafetensorsShapesWhoseSizeOverflowsAreErrors) {
  const auto d = test::fresh_dir("fuzzreg_st");
  // 2^62 * 4 elements of F32 wrap to 0 bytes: before, this "matched" an empty span.
  write(d / "a.safetensors", safetensors(R"({"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})"));
  expect_config_error([&] { io::SafeTensorsFile f(d / "a.safetensors"); }, "overflows 64 bits");
  write(d / "b.safetensors", safetensors(R"({"t":{"dtype":"F64","shape":[18446744073709551615],"data_offsets":[0,8]}})", std::string(8, '\0')));
  expect_config_error([&] { io::SafeTensorsFile f(d / "b.safetensors"); }, "overflows 64 bits");
  // A dtype or offset of the wrong JSON type: a type error inside the reader.
  write(d / "c.safetensors", safetensors(R"({"t":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')));
  expect_config_error([&] { io::SafeTensorsFile f(d / "c.safetensors"); }, "c.safetensors");
  write(d / "e.safetensors", safetensors(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":["0",4]}})", std::string(4, '\0')));
  expect_config_error([&] { io::SafeTensorsFile f(d / "e.safetensors"); }, "e.safetensors");
}

TEST(FuzzRegression, AdapterConfigFieldsOfTheWrongTypeAreErrors) {
  for (const char* cfg : {R"({"r": 8, "peft_type": 3})", R"({"r": 8, "use_dora": "yes"})", R"({"r": 8, "fan_in_fan_out": 1})"}) {
    expect_config_error([&] { lora::lora_args_from_adapter_config(nlohmann::json::parse(cfg), "adapter_config.json"); },
                        "adapter_config.json: ");
  }
}

TEST(FuzzRegression, DatasetInfoAndRowsOfTheWrongTypeAreErrorsOrSkippedRows) {
  const auto d = test::fresh_dir("fuzzreg_data");
  write(d / "data.json", R"([{"instruction": "a", "output": "b"}])");
  write(d / "dataset_info.json", R"({"x": {"file_name": "data.json", "formatting": 3}})");
  expect_config_error([&] { data::resolve_dataset("x", d); }, "dataset_info.json");
  write(d / "dataset_info.json", R"({"x": {"file_name": "data.json", "tags": {"role_tag": 1}}})");
  expect_config_error([&] { data::resolve_dataset("x", d); }, "dataset_info.json");
  write(d / "dataset_info.json", R"({"x": {"file_name": 5}})");
  expect_config_error([&] { data::resolve_dataset("x", d); }, "dataset_info.json");
  // A row with a field of the wrong type (a TRL prompt message whose role is a number) is a
  // malformed row, skipped with the warning; the good row stays. Before, the type error ended the run.
  write(d / "rows.json", R"([{"prompt": [{"role": 1, "content": "x"}], "completion": "y"}, {"prompt": "a", "completion": "b"}])");
  write(d / "dataset_info.json", R"({"x": {"file_name": "rows.json", "columns": {"prompt": "prompt", "response": "completion"}}})");
  EXPECT_EQ(data::read_dataset(data::resolve_dataset("x", d), false).size(), 1u);
}

TEST(FuzzRegression, TokenizerJsonFieldsOfTheWrongTypeAreErrors) {
  const auto d = test::fresh_dir("fuzzreg_tok");
  tokenizer::write_bytes_tokenizer(d);
  const auto good = nlohmann::json::parse(read_file(d / "tokenizer.json"));
  // tokenizer_fuzz (2026-12-02): an added token without "id" was read with operator[] on a const
  // json, which is undefined for a missing key (a heap overflow under ASan); so were a one-element
  // merge and a model without vocab or merges. Every read is at() now.
  for (const char* patch : {R"({"normalizer": {"type": 5}})", R"({"model": {"type": "BPE", "byte_fallback": "no"}})",
                            R"({"added_tokens": [{"id": "x", "content": "<a>"}]})", R"({"decoder": {"type": []}})",
                            R"({"added_tokens": [{"co": 261, "content": "<a>"}]})", R"({"added_tokens": [{"id": 261}]})",
                            R"({"model": {"merges": [["a"]]}})", R"({"model": {"vocab": null}})", R"({"model": {"merges": null}})",
                            R"({"pre_tokenizer": {"type": "Sequence", "pretokenizers": null}})",
                            // and a token id that is no integer a vocabulary can hold (2.3e53 was UB in get<int64_t>)
                            R"({"added_tokens": [{"id": 2.31111e+53, "content": "<a>"}]})", R"({"added_tokens": [{"id": -5, "content": "<a>"}]})",
                            R"({"model": {"vocab": {"a": 1e300}}})", R"({"model": {"vocab": {"a": 99999999999}}})"}) {
    SCOPED_TRACE(patch);
    auto t = good;
    t.merge_patch(nlohmann::json::parse(patch));
    write(d / "tokenizer.json", t.dump());
    expect_config_error([&] { tokenizer::Tokenizer::from_dir(d); }, "tokenizer.json: ");
  }
}

// Found by config_fuzz: an error message holding a NUL byte (here a key read from the input) was
// cut at it by what(), a C string: gym printed "gym: error: " and nothing else. gym::Error now
// writes NUL bytes as \0.
TEST(FuzzRegression, ErrorMessagesWithNulBytesAreNotCut) {
  const auto crash = read_file(fs::path(GYM_TEST_DATA) / "fuzz" / "config_fuzz-nul-in-override");
  const auto cut = crash.find('\0');
  try {
    config::load_config_from_string(crash.substr(0, cut), {crash.substr(cut + 1)});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("\\0"), std::string::npos) << e.what();
  }
  EXPECT_STREQ(Error(ErrorKind::Config, std::string("a\0b", 3)).what(), "a\\0b");
}
