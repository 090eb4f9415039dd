#include "core/utf8.h"

namespace hotswap {
namespace {

// Bounds of the second byte for each lead byte (Unicode Table 3-7, well-formed sequences);
// the remaining continuation bytes are always 0x80..0xBF.
struct LeadInfo {
  size_t length;  // 0: the byte cannot start a sequence
  uint8_t second_low;
  uint8_t second_high;
};

LeadInfo lead_info(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Number of bytes of the well-formed prefix of the sequence starting at text[pos] (at least
// 1); *complete says whether they form a whole character.
size_t scan_sequence(std::string_view text, size_t pos, bool* complete) {
  const auto lead = static_cast<uint8_t>(text[pos]);
  const LeadInfo info = lead_info(lead);
  if (info.length == 1) {
    *complete = true;
    return 1;
  }
  *complete = false;
  if (info.length == 0) return 1;
  size_t n = 1;
  for (; n < info.length; ++n) {
    if (pos + n >= text.size()) return n;
    const auto b = static_cast<uint8_t>(text[pos + n]);
    const uint8_t low = n == 1 ? info.second_low : 0x80;
    const uint8_t high = n == 1 ? info.second_high : 0xBF;
    if (b < low || b > high) return n;
  }
  *complete = true;
  return n;
}

}  // namespace

char32_t decode_utf8(std::string_view text, size_t pos, size_t* length) {
  const auto b0 = static_cast<uint8_t>(text[pos]);
  const size_t n = utf8_sequence_length(b0);
  *length = n;
  if (n == 1) return b0;
  char32_t cp = b0 & (0x7F >> n);
  for (size_t i = 1; i < n; ++i) cp = (cp << 6) | (static_cast<uint8_t>(text[pos + i]) & 0x3F);
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
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

size_t valid_utf8_prefix(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<uint8_t>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    bool complete = false;
    const size_t n = scan_sequence(text, pos, &complete);
    if (!complete) return pos;
    pos += n;
  }
  return pos;
}

std::string to_valid_utf8(std::string_view bytes) {
  const size_t valid = valid_utf8_prefix(bytes);
  if (valid == bytes.size()) return std::string(bytes);
  std::string out(bytes.substr(0, valid));
  size_t pos = valid;
  while (pos < bytes.size()) {
    bool complete = false;
    const size_t n = scan_sequence(bytes, pos, &complete);
    if (complete) {
      out.append(bytes.substr(pos, n));
    } else {
      append_utf8(out, kReplacementChar);
    }
    pos += n;
  }
  return out;
}

}  // namespace hotswap
