#include "tokenizer/bytes_map.h"

namespace gym::tokenizer {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

const ByteMap& ByteMap::get() {
  static const ByteMap map = [] {
    ByteMap m;
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      const uint32_t cp = printable ? b : 256 + extra++;
      append_utf8(m.to_unicode[b], cp);
      m.from_unicode[cp] = static_cast<uint8_t>(b);
    }
    return m;
  }();
  return map;
}

// Well-formed UTF-8 per Unicode Table 3-7; `len` is the length of the maximal valid prefix.
static size_t valid_prefix(const unsigned char* s, size_t n, uint32_t* cp) {
  const unsigned char c = s[0];
  if (c < 0x80) return *cp = c, 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) need = 1, *cp = c & 0x1F;
  else if (c == 0xE0) need = 2, lo = 0xA0, *cp = c & 0x0F;
  else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2, *cp = c & 0x0F;
  else if (c == 0xED) need = 2, hi = 0x9F, *cp = c & 0x0F;
  else if (c == 0xF0) need = 3, lo = 0x90, *cp = c & 0x07;
  else if (c >= 0xF1 && c <= 0xF3) need = 3, *cp = c & 0x07;
  else if (c == 0xF4) need = 3, hi = 0x8F, *cp = c & 0x07;
  else return 0;
  size_t i = 1;
  for (; i <= need; ++i) {
    if (i >= n) return 0x100 + i;   // truncated: the bytes so far form one maximal subpart
    const unsigned char b = s[i];
    if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) return 0x100 + i;
    *cp = (*cp << 6) | (b & 0x3F);
  }
  return need + 1;
}

bool next_code_point(const std::string& s, size_t& i, uint32_t& cp) {
  const size_t r = valid_prefix(reinterpret_cast<const unsigned char*>(s.data()) + i, s.size() - i, &cp);
  if (r == 0 || r >= 0x100) return false;
  i += r;
  return true;
}

std::string utf8_replace_invalid(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t i = 0;
  while (i < bytes.size()) {
    uint32_t cp;
    const size_t r = valid_prefix(s + i, bytes.size() - i, &cp);
    if (r > 0 && r < 0x100) {
      out.append(bytes, i, r);
      i += r;
    } else {
      out += "\xEF\xBF\xBD";
      i += r == 0 ? 1 : std::max<size_t>(1, r - 0x100);
    }
  }
  return out;
}

}  // namespace gym::tokenizer
