// Reading users' JSON files: the one place where a JSON error becomes a gym::Error, and the
// parser with a nesting bound that every reader of a user's JSON goes through.
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

// Deeper than any configuration, dataset row or tool schema gym meets (HF configs: ~4 levels).
// Parsing itself is iterative, but copying a value recurses once per level: a file nested 200 000
// deep parsed and then overflowed the stack when a reader copied it.
inline constexpr int kMaxJsonDepth = 512;

// Json::parse(text) with that bound: a deeper value throws nlohmann's out_of_range (406), a
// json::exception like the parse errors (json_reader and the callers' handlers name the file).
// With allow_exceptions false: a discarded value for text that is invalid or too deep, as
// parse(text, nullptr, false) gives for invalid text.
template <typename Json = nlohmann::json>
Json parse_json(const std::string& text, bool allow_exceptions = true) {
  const typename Json::parser_callback_t limit = [](int depth, typename Json::parse_event_t, Json&) {
    if (depth > kMaxJsonDepth)
      throw Json::out_of_range::create(406, "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels",
                                       static_cast<const Json*>(nullptr));
    return true;
  };
  if (allow_exceptions) return Json::parse(text, limit);
  try {
    return Json::parse(text, limit, false);
  } catch (const typename Json::exception&) {
    return Json(Json::value_t::discarded);
  }
}

}  // namespace gym
