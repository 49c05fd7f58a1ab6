// Shared by the libFuzzer targets: a private scratch folder, splitting one input into several
// files, and the one rule every target checks: gym's readers either succeed or throw gym::Error.
// Any other exception escapes LLVMFuzzerTestOneInput and aborts (a crash for libFuzzer), as do
// ASan / UBSan reports.
#pragma once
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gym/core/error.h"

namespace gym::fuzz {

// <tmp>/gym_fuzz_<name>_<pid>: one per process (libFuzzer -jobs / -workers run several).
inline const std::filesystem::path& scratch(const std::string& name) {
  static const std::filesystem::path dir = [&] {
    auto d = std::filesystem::temp_directory_path() / ("gym_fuzz_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    spdlog::set_level(spdlog::level::off);   // warnings about skipped rows etc. would flood the output
    return d;
  }();
  return dir;
}

inline void write(const std::filesystem::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(s.data(), static_cast<std::streamsize>(s.size()));
}

// The input cut at NUL bytes into at most `n` parts (the last part keeps any further NULs);
// missing parts are empty. The seeds are made this way (fuzz/make_corpus.py).
inline std::vector<std::string> split(const uint8_t* data, size_t size, size_t n) {
  std::vector<std::string> parts;
  std::string cur;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0 && parts.size() + 1 < n) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(static_cast<char>(data[i]));
    }
  }
  parts.push_back(cur);
  parts.resize(n);
  return parts;
}

// Runs f; a gym::Error is the expected clean failure (its message must name something).
template <typename F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const gym::Error& e) {
    if (std::string(e.what()).empty()) __builtin_trap();
  }
}

}  // namespace gym::fuzz
