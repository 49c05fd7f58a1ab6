#include "data/delimited.h"

#include <set>

#include "gym/core/error.h"

namespace gym::data {

namespace {

struct Record {
  std::vector<std::string> fields;
  int line = 0;            // where the record starts (1-based)
  bool unterminated = false;   // a quoted field ran to the end of the file
};

// One pass over the text: a small state machine (field start, unquoted, quoted, quote seen).
std::vector<Record> split_records(const std::string& text, char delim) {
  std::vector<Record> out;
  size_t i = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  int line = 1;
  while (i < text.size()) {
    Record r;
    r.line = line;
    std::string field;
    bool quoted = false, end_of_record = false;
    while (i < text.size() && !end_of_record) {
      const char ch = text[i];
      if (quoted) {
        if (ch == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') field += '"', i += 2;
          else quoted = false, ++i;
        } else {
          if (ch == '\n') ++line;
          field += ch, ++i;
        }
        continue;
      }
      if (ch == '"' && field.empty()) {
        quoted = true, ++i;
      } else if (ch == delim) {
        r.fields.push_back(std::move(field)), field.clear(), ++i;
      } else if (ch == '\n' || ch == '\r') {
        i += (ch == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ? 2 : 1;
        ++line;
        end_of_record = true;
      } else {
        field += ch, ++i;
      }
    }
    r.unterminated = quoted;
    r.fields.push_back(std::move(field));
    const bool blank = r.fields.size() == 1 && r.fields[0].empty();
    if (!blank || r.unterminated) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, nlohmann::json>> parse_delimited(const std::string& text, char delim, const std::string& file,
                                                                    std::vector<std::string>& bad) {
  std::vector<std::pair<std::string, nlohmann::json>> rows;
  auto records = split_records(text, delim);
  if (records.empty()) return rows;
  const auto& header = records.front().fields;
  std::set<std::string> seen;
  for (size_t c = 0; c < header.size(); ++c) {
    if (header[c].empty()) config_error("{}: the header's column {} has no name", file, c + 1);
    if (!seen.insert(header[c]).second) config_error("{}: the header names column '{}' twice", file, header[c]);
  }
  for (size_t k = 1; k < records.size(); ++k) {
    const auto& r = records[k];
    if (r.unterminated) {
      bad.push_back("line " + std::to_string(r.line) + " (a quoted field is never closed)");
      continue;
    }
    if (r.fields.size() != header.size()) {
      bad.push_back("line " + std::to_string(r.line) + " (" + std::to_string(r.fields.size()) + " fields, the header has " +
                    std::to_string(header.size()) + ")");
      continue;
    }
    nlohmann::json row = nlohmann::json::object();
    for (size_t c = 0; c < header.size(); ++c) row[header[c]] = r.fields[c];
    rows.emplace_back(file + ":" + std::to_string(r.line), std::move(row));
  }
  return rows;
}

}  // namespace gym::data
