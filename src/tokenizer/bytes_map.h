// GPT-2's reversible byte ↔ printable-unicode map used by byte-level BPE.
#pragma once
#include <array>
#include <string>
#include <unordered_map>

namespace gym::tokenizer {

struct ByteMap {
  std::array<std::string, 256> to_unicode;            // byte → UTF-8 of its stand-in character
  std::unordered_map<uint32_t, uint8_t> from_unicode;  // code point → byte
  static const ByteMap& get();
};

// Appends the UTF-8 encoding of a code point.
void append_utf8(std::string& out, uint32_t cp);

// Decodes one code point at s[i] (advancing i); returns false on invalid UTF-8.
bool next_code_point(const std::string& s, size_t& i, uint32_t& cp);

// Bytes → valid UTF-8, each maximal invalid subsequence replaced by U+FFFD (Python's "replace").
std::string utf8_replace_invalid(const std::string& bytes);

}  // namespace gym::tokenizer
