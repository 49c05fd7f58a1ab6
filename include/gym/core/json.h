// Reading users' JSON files: the one place where a JSON error becomes a gym::Error.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "gym/core/error.h"

namespace gym {

// nlohmann's message without its "[json.exception.type_error.302] " prefix.
inline std::string json_error_text(const nlohmann::json::exception& e) {
  const std::string w = e.what();
  const auto close = w.find("] ");
  return w.rfind("[json.exception.", 0) == 0 && close != std::string::npos ? w.substr(close + 2) : w;
}

// Runs a reader of a user's JSON (get<>, value(), at() on fields it did not check one by one): a
// field of the wrong type, a number out of range or a missing key becomes one config error
// "<source>: <problem>" (exit 2) instead of an exception gym does not know; so does a path the
// file names that the OS refuses to look at (a name too long, a loop of links). Readers wrap
// their whole body in it (the fuzz targets in fuzz/ check that nothing else escapes).
template <typename F>
auto json_reader(const std::string& source, F&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const nlohmann::json::exception& e) {
    config_error("{}: {}", source, json_error_text(e));
  } catch (const std::filesystem::filesystem_error& e) {
    config_error("{}: {}", source, e.what());
  }
}

}  // namespace gym
