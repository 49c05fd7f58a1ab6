// Helpers shared by the tests: fresh temporary folders and trainer_log.jsonl.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace gym::test {

// <tmp>/gym_<name>, emptied (and created when `create`).
inline std::filesystem::path fresh_dir(const std::string& name, bool create = true) {
  auto d = std::filesystem::temp_directory_path() / ("gym_" + name);
  std::filesystem::remove_all(d);
  if (create) std::filesystem::create_directories(d);
  return d;
}

// Every line of output_dir/trainer_log.jsonl.
inline std::vector<nlohmann::json> read_log(const std::filesystem::path& dir) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(dir / "trainer_log.jsonl");
  std::string l;
  while (std::getline(in, l)) lines.push_back(nlohmann::json::parse(l));
  return lines;
}

}  // namespace gym::test
