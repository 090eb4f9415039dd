#include "tokenizer/unicode_props.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/uset.h>

#include <vector>

#include "core/check.h"
#include "tokenizer/utf8.h"

namespace hotswap::tok {
namespace {

bool is_ascii(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

std::u16string to_utf16(std::string_view text) {
  std::u16string out(text.size(), u'\0');  // UTF-16 never needs more units than UTF-8 bytes
  int32_t length = 0;
  UErrorCode status = U_ZERO_ERROR;
  u_strFromUTF8(out.data(), static_cast<int32_t>(out.size()), &length, text.data(),
                static_cast<int32_t>(text.size()), &status);
  HS_CHECK(U_SUCCESS(status)) << "u_strFromUTF8: " << u_errorName(status);
  out.resize(static_cast<size_t>(length));
  return out;
}

std::string to_utf8(const std::u16string& text) {
  std::string out(text.size() * 3, '\0');
  int32_t length = 0;
  UErrorCode status = U_ZERO_ERROR;
  u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &length, text.data(),
              static_cast<int32_t>(text.size()), &status);
  HS_CHECK(U_SUCCESS(status)) << "u_strToUTF8: " << u_errorName(status);
  out.resize(static_cast<size_t>(length));
  return out;
}

// tokenizers normalizes with Unicode 9 tables (the unicode-normalization-alignments crate);
// ICU's are newer. Restricting ICU to the characters Unicode 9 had assigned makes every
// later character pass through unchanged, as it does there: no decomposition, and
// combining class 0 (it blocks reordering).
class LegacyNormalizers {
 public:
  LegacyNormalizers() {
    UErrorCode status = U_ZERO_ERROR;
    static const UChar kPattern[] = u"[:Age=9.0:]";
    assigned_ = uset_openPattern(kPattern, -1, &status);
    HS_CHECK(U_SUCCESS(status)) << "uset_openPattern: " << u_errorName(status);
    uset_freeze(assigned_);
    const UNormalizer2* base[] = {unorm2_getNFCInstance(&status), unorm2_getNFDInstance(&status),
                                  unorm2_getNFKCInstance(&status), unorm2_getNFKDInstance(&status)};
    HS_CHECK(U_SUCCESS(status)) << "ICU normalizer data missing: " << u_errorName(status);
    for (size_t i = 0; i < 4; ++i) {
      filtered_[i] = unorm2_openFiltered(base[i], assigned_, &status);
      HS_CHECK(U_SUCCESS(status)) << "unorm2_openFiltered: " << u_errorName(status);
    }
  }
  const UNormalizer2* get(NormalizationForm form) const { return filtered_[static_cast<size_t>(form)]; }

 private:
  USet* assigned_ = nullptr;  // lives as long as the process, like the normalizers using it
  UNormalizer2* filtered_[4] = {};
};

const UNormalizer2* normalizer_instance(NormalizationForm form) {
  static const LegacyNormalizers normalizers;
  return normalizers.get(form);
}

// Lowercase mappings Unicode 16 added (Rust's char::to_lowercase has them; ICU 72 stops at
// Unicode 15, where these code points are unassigned).
char32_t unicode16_lowercase(char32_t c) {
  if (c >= 0x10D50 && c <= 0x10D65) return c + 0x20;  // Garay
  if (c >= 0x16EA0 && c <= 0x16EB8) return c + 0x1B;  // Kirat Rai
  switch (c) {
    case 0x1C89: return 0x1C8A;
    case 0xA7CB: return 0x0264;
    case 0xA7CC: return 0xA7CD;
    case 0xA7CE: return 0xA7CF;
    case 0xA7D2: return 0xA7D3;
    case 0xA7D4: return 0xA7D5;
    case 0xA7DA: return 0xA7DB;
    case 0xA7DC: return 0x019B;
    default: return 0;
  }
}

}  // namespace

bool is_whitespace(char32_t c) { return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE); }

bool is_numeric(char32_t c) {
  const int8_t type = u_charType(static_cast<UChar32>(c));
  return type == U_DECIMAL_DIGIT_NUMBER || type == U_LETTER_NUMBER || type == U_OTHER_NUMBER;
}

bool is_unicode9_mark(char32_t c) {
  // Three code points changed category after Unicode 9: U+1CF2/U+1CF3 were spacing marks
  // then, U+111C9 was punctuation.
  if (c == 0x1CF2 || c == 0x1CF3) return true;
  if (c == 0x111C9) return false;
  const auto cp = static_cast<UChar32>(c);
  if ((U_GET_GC_MASK(cp) & U_GC_M_MASK) == 0) return false;
  UVersionInfo age;
  u_charAge(cp, age);
  return age[0] < 9 || (age[0] == 9 && age[1] == 0);
}

bool is_word_char(char32_t c) {
  const auto cp = static_cast<UChar32>(c);
  if (u_hasBinaryProperty(cp, UCHAR_ALPHABETIC) || u_hasBinaryProperty(cp, UCHAR_JOIN_CONTROL)) return true;
  const uint32_t mask = U_GET_GC_MASK(cp);
  return (mask & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}

std::string to_lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const auto b = static_cast<unsigned char>(text[pos]);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b >= 'A' && b <= 'Z' ? b + ('a' - 'A') : b));
      ++pos;
      continue;
    }
    size_t length = 0;
    const char32_t c = decode_utf8(text, pos, &length);
    pos += length;
    if (const char32_t lower = unicode16_lowercase(c)) {
      append_utf8(out, lower);
      continue;
    }
    // Each code point is mapped alone, as Rust's char::to_lowercase does; a lone capital
    // sigma has no cased letter before it, so ICU's context rule cannot fire.
    UChar src[2];
    int32_t src_length = 0;
    U16_APPEND_UNSAFE(src, src_length, static_cast<UChar32>(c));
    UChar dest[8];
    UErrorCode status = U_ZERO_ERROR;
    const int32_t n = u_strToLower(dest, 8, src, src_length, "", &status);
    HS_CHECK(U_SUCCESS(status)) << "u_strToLower: " << u_errorName(status);
    for (int32_t i = 0; i < n;) {
      UChar32 lower = 0;
      U16_NEXT_UNSAFE(dest, i, lower);
      append_utf8(out, static_cast<char32_t>(lower));
    }
  }
  return out;
}

std::string normalize_unicode(std::string_view text, NormalizationForm form) {
  if (is_ascii(text)) return std::string(text);
  const UNormalizer2* normalizer = normalizer_instance(form);
  const std::u16string src = to_utf16(text);
  UErrorCode status = U_ZERO_ERROR;
  const int32_t normalized_prefix =
      unorm2_spanQuickCheckYes(normalizer, src.data(), static_cast<int32_t>(src.size()), &status);
  HS_CHECK(U_SUCCESS(status)) << "unorm2_spanQuickCheckYes: " << u_errorName(status);
  if (normalized_prefix == static_cast<int32_t>(src.size())) return std::string(text);
  std::u16string dest(src.size() * 4 + 16, u'\0');
  for (;;) {
    status = U_ZERO_ERROR;
    const int32_t n = unorm2_normalize(normalizer, src.data(), static_cast<int32_t>(src.size()), dest.data(),
                                       static_cast<int32_t>(dest.size()), &status);
    if (status == U_BUFFER_OVERFLOW_ERROR) {
      dest.resize(static_cast<size_t>(n));
      continue;
    }
    HS_CHECK(U_SUCCESS(status)) << "unorm2_normalize: " << u_errorName(status);
    dest.resize(static_cast<size_t>(n));
    return to_utf8(dest);
  }
}

}  // namespace hotswap::tok
