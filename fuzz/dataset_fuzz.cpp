// The dataset readers (data/registry.cpp, data/reader.cpp): a dataset_info.json and a data file
// it may name (data.json and data.jsonl hold the same bytes), read as SFT rows and as RL prompts.
// Input: dataset_info.json \0 data file. The dataset's name is dataset_info.json's first key.
#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "gym/data/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& dir = gym::fuzz::scratch("dataset");
  const auto parts = gym::fuzz::split(data, size, 2);
  gym::fuzz::write(dir / "dataset_info.json", parts[0]);
  gym::fuzz::write(dir / "data.json", parts[1]);
  gym::fuzz::write(dir / "data.jsonl", parts[1]);
  std::vector<std::string> names = {"data.json", "data.jsonl"};
  const auto info = nlohmann::json::parse(parts[0], nullptr, false);
  if (!info.is_discarded() && info.is_object() && !info.empty()) names.insert(names.begin(), info.begin().key());
  for (const auto& name : names)
    for (bool prompt_only : {false, true})
      gym::fuzz::expect_clean([&] {
        const auto spec = gym::data::resolve_dataset(name, dir);
        (void)gym::data::read_dataset(spec, prompt_only);
      });
  return 0;
}
