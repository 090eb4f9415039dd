#include "chat/py_text.h"

#include <locale.h>
#include <wctype.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace hotswap::jinja {
namespace {

// glibc ships C.UTF-8 built in (2.35+); its wctype tables give Unicode simple case
// mappings without touching the process-global locale. Null falls back to ASCII.
locale_t unicode_locale() {
  static const locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  return loc;
}

// Decodes one code point at text[pos]; advances pos. Invalid sequences yield U+FFFD.
char32_t next_cp(std::string_view text, size_t& pos) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  int extra = 0;
  char32_t cp = 0;
  if ((b0 & 0xE0) == 0xC0) {
    extra = 1;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    extra = 2;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    extra = 3;
    cp = b0 & 0x07;
  } else {
    ++pos;
    return 0xFFFD;
  }
  if (pos + extra >= text.size()) {
    ++pos;
    return 0xFFFD;
  }
  for (int i = 1; i <= extra; ++i) {
    const auto b = static_cast<unsigned char>(text[pos + i]);
    if ((b & 0xC0) != 0x80) {
      ++pos;
      return 0xFFFD;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  pos += extra + 1;
  return cp;
}

bool is_printable_cp(char32_t cp) {
  // Approximates Python's str.isprintable(): controls, format characters, separators
  // other than ' ', surrogates and private use are escaped. Unassigned code points
  // (category Cn) would need the full Unicode tables and are treated as printable.
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) return false;
  if ((cp >= 0x600 && cp <= 0x605) || cp == 0x61C || cp == 0x6DD || cp == 0x70F || cp == 0x890 || cp == 0x891 ||
      cp == 0x8E2 || cp == 0x1680 || cp == 0x180E)
    return false;
  if ((cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x2064) ||
      (cp >= 0x2066 && cp <= 0x206F) || cp == 0x3000)
    return false;
  if ((cp >= 0xD800 && cp <= 0xF8FF) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB)) return false;
  if (cp == 0x110BD || cp == 0x110CD || (cp >= 0x13430 && cp <= 0x1343F) || (cp >= 0x1BCA0 && cp <= 0x1BCA3) ||
      (cp >= 0x1D173 && cp <= 0x1D17A) || cp == 0xE0001 || (cp >= 0xE0020 && cp <= 0xE007F) || cp >= 0xF0000)
    return false;
  return true;
}

}  // namespace

CodePoints decode_utf8(std::string_view text) {
  CodePoints out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) out.push_back(next_cp(text, pos));
  return out;
}

std::string encode_utf8(const CodePoints& cps) { return encode_utf8(cps, 0, cps.size()); }

std::string encode_utf8(const CodePoints& cps, size_t begin, size_t end) {
  std::string out;
  out.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) append_utf8(out, cps[i]);
  return out;
}

size_t utf8_length(std::string_view text) {
  size_t n = 0;
  for (const char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool py_isspace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

size_t py_space_at(std::string_view text, size_t pos) {
  if (pos >= text.size()) return 0;
  size_t next = pos;
  const char32_t cp = next_cp(text, next);
  return py_isspace(cp) ? next - pos : 0;
}

std::string py_strip(std::string_view text, const std::optional<std::string>& chars, bool left, bool right) {
  const CodePoints cps = decode_utf8(text);
  const CodePoints strip_set = chars ? decode_utf8(*chars) : CodePoints{};
  auto strippable = [&](char32_t cp) {
    if (!chars) return py_isspace(cp);
    for (const char32_t c : strip_set)
      if (c == cp) return true;
    return false;
  };
  size_t begin = 0;
  size_t end = cps.size();
  if (left)
    while (begin < end && strippable(cps[begin])) ++begin;
  if (right)
    while (end > begin && strippable(cps[end - 1])) --end;
  return encode_utf8(cps, begin, end);
}

char32_t upper_cp(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
  const locale_t loc = unicode_locale();
  return loc ? static_cast<char32_t>(towupper_l(static_cast<wint_t>(cp), loc)) : cp;
}

char32_t lower_cp(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  const locale_t loc = unicode_locale();
  return loc ? static_cast<char32_t>(towlower_l(static_cast<wint_t>(cp), loc)) : cp;
}

bool is_upper_cp(char32_t cp) {
  if (cp < 0x80) return cp >= 'A' && cp <= 'Z';
  const locale_t loc = unicode_locale();
  return loc && iswupper_l(static_cast<wint_t>(cp), loc);
}

bool is_lower_cp(char32_t cp) {
  if (cp < 0x80) return cp >= 'a' && cp <= 'z';
  const locale_t loc = unicode_locale();
  return loc && iswlower_l(static_cast<wint_t>(cp), loc);
}

bool is_cased_cp(char32_t cp) { return is_upper_cp(cp) || is_lower_cp(cp) || upper_cp(cp) != lower_cp(cp); }

bool is_alpha_cp(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  const locale_t loc = unicode_locale();
  return loc && iswalpha_l(static_cast<wint_t>(cp), loc);
}

bool is_digit_cp(char32_t cp) { return cp >= '0' && cp <= '9'; }

std::string py_upper(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char32_t cp : decode_utf8(text)) {
    if (cp == 0xDF) {  // 'ß' has no single upper-case code point; Python uses SpecialCasing.
      out += "SS";
    } else {
      append_utf8(out, upper_cp(cp));
    }
  }
  return out;
}

std::string py_lower(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char32_t cp : decode_utf8(text)) append_utf8(out, lower_cp(cp));
  return out;
}

std::string py_title(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool previous_cased = false;
  for (const char32_t cp : decode_utf8(text)) {
    if (previous_cased) {
      append_utf8(out, lower_cp(cp));
    } else if (cp == 0xDF) {  // 'ß' title-cases to "Ss"
      out += "Ss";
    } else {
      append_utf8(out, upper_cp(cp));
    }
    previous_cased = is_cased_cp(cp);
  }
  return out;
}

std::string py_capitalize(std::string_view text) {
  const CodePoints cps = decode_utf8(text);
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0 && cps[i] == 0xDF) {  // 'ß' title-cases to "Ss"
      out += "Ss";
      continue;
    }
    append_utf8(out, i == 0 ? upper_cp(cps[i]) : lower_cp(cps[i]));
  }
  return out;
}

std::string py_repr_string(std::string_view text) {
  const CodePoints cps = decode_utf8(text);
  bool has_single = false;
  bool has_double = false;
  for (const char32_t cp : cps) {
    has_single |= cp == '\'';
    has_double |= cp == '"';
  }
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  char buf[16];
  for (const char32_t cp : cps) {
    if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (is_printable_cp(cp)) {
      append_utf8(out, cp);
    } else if (cp <= 0xFF) {
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(cp));
      out += buf;
    } else if (cp <= 0xFFFF) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(cp));
      out += buf;
    } else {
      std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(cp));
      out += buf;
    }
  }
  out.push_back(quote);
  return out;
}

std::string py_float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, then CPython's float_repr_style='short' layout:
  // exponent notation when the decimal point position is < -3 or > 16.
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<size_t>(result.ptr - buf));
  const size_t e_pos = sci.find('e');
  std::string_view mantissa = sci.substr(0, e_pos);
  const int exponent = std::stoi(std::string(sci.substr(e_pos + 1)));
  const bool negative = !mantissa.empty() && mantissa[0] == '-';
  if (negative) mantissa.remove_prefix(1);
  std::string digits;
  for (const char c : mantissa)
    if (c != '.') digits.push_back(c);
  const int decpt = exponent + 1;  // value = 0.digits * 10^decpt
  std::string out = negative ? "-" : "";
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-decpt), '0');
      out += digits;
    } else if (static_cast<size_t>(decpt) >= digits.size()) {
      out += digits;
      out.append(static_cast<size_t>(decpt) - digits.size(), '0');
      out += ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt));
      out += ".";
      out += digits.substr(static_cast<size_t>(decpt));
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) {
    out += ".";
    out += digits.substr(1);
  }
  std::snprintf(buf, sizeof(buf), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  out += buf;
  return out;
}

std::vector<int64_t> slice_positions(int64_t length, std::optional<int64_t> start, std::optional<int64_t> stop,
                                     std::optional<int64_t> step) {
  const int64_t st = std::max<int64_t>(step.value_or(1), -INT64_MAX);  // keeps -st representable
  if (st == 0) throw std::invalid_argument("slice step cannot be zero");
  // CPython's PySlice_Unpack defaults followed by PySlice_AdjustIndices.
  int64_t lo = start.value_or(st < 0 ? INT64_MAX : 0);
  int64_t hi = stop.value_or(st < 0 ? INT64_MIN : INT64_MAX);
  auto adjust = [&](int64_t& index) {
    if (index < 0) {
      index += length;
      if (index < 0) index = st < 0 ? -1 : 0;
    } else if (index >= length) {
      index = st < 0 ? length - 1 : length;
    }
  };
  adjust(lo);
  adjust(hi);
  int64_t count = 0;
  if (st < 0) {
    if (hi < lo) count = (lo - hi - 1) / (-st) + 1;
  } else if (lo < hi) {
    count = (hi - lo - 1) / st + 1;
  }
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) out.push_back(lo + k * st);
  return out;
}

}  // namespace hotswap::jinja
