// CSV and TSV dataset files (LLaMA-Factory's "csv" loader): RFC 4180 records under a header row.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace gym::data {

// text: the whole file; delim ',' or '\t'. Each record → a JSON object {column: string} keyed by the
// header. Quoted fields may hold the delimiter, newlines and "" (one quote); CRLF and LF both end a
// record; a UTF-8 BOM is skipped. A record with another field count than the header is appended to
// `bad` as "line N (...)" and skipped. A header with an empty or repeated name is a config error
// naming the file. Returns (where, row) pairs, where = "<file>:<line>".
std::vector<std::pair<std::string, nlohmann::json>> parse_delimited(const std::string& text, char delim, const std::string& file,
                                                                    std::vector<std::string>& bad);

}  // namespace gym::data
