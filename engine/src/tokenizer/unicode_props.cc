#include "tokenizer/unicode_props.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/uset.h>

#include <vector>

#include "core/check.h"
#include "core/utf8.h"

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

constexpr AssignedRange kAddedAfterUnicode15[] = {
    {0x1C89, 0x1C89, U_GC_LU_MASK},   {0x1C8A, 0x1C8A, U_GC_LL_MASK},   {0xA7CB, 0xA7CC, U_GC_LU_MASK},
    {0xA7CD, 0xA7CD, U_GC_LL_MASK},   {0xA7DA, 0xA7DA, U_GC_LU_MASK},   {0xA7DB, 0xA7DB, U_GC_LL_MASK},
    {0xA7DC, 0xA7DC, U_GC_LU_MASK},   {0x105C0, 0x105F3, U_GC_LO_MASK}, {0x10D4A, 0x10D4D, U_GC_LO_MASK},
    {0x10D4E, 0x10D4E, U_GC_LM_MASK}, {0x10D4F, 0x10D4F, U_GC_LO_MASK}, {0x10D50, 0x10D65, U_GC_LU_MASK},
    {0x10D6F, 0x10D6F, U_GC_LM_MASK}, {0x10D70, 0x10D85, U_GC_LL_MASK}, {0x10EC2, 0x10EC4, U_GC_LO_MASK},
    {0x11380, 0x11389, U_GC_LO_MASK}, {0x1138B, 0x1138B, U_GC_LO_MASK}, {0x1138E, 0x1138E, U_GC_LO_MASK},
    {0x11390, 0x113B5, U_GC_LO_MASK}, {0x113B7, 0x113B7, U_GC_LO_MASK}, {0x113D1, 0x113D1, U_GC_LO_MASK},
    {0x113D3, 0x113D3, U_GC_LO_MASK}, {0x11BC0, 0x11BE0, U_GC_LO_MASK}, {0x13460, 0x143FA, U_GC_LO_MASK},
    {0x16100, 0x1611D, U_GC_LO_MASK}, {0x16D40, 0x16D42, U_GC_LM_MASK}, {0x16D43, 0x16D6A, U_GC_LO_MASK},
    {0x16D6B, 0x16D6C, U_GC_LM_MASK}, {0x18CFF, 0x18CFF, U_GC_LO_MASK}, {0x1E5D0, 0x1E5ED, U_GC_LO_MASK},
    {0x1E5F0, 0x1E5F0, U_GC_LO_MASK}, {0x2EBF0, 0x2EE5D, U_GC_LO_MASK},
    {0x0897, 0x0897, U_GC_M_MASK},    {0x10D69, 0x10D6D, U_GC_M_MASK},  {0x10EFC, 0x10EFC, U_GC_M_MASK},
    {0x113B8, 0x113C0, U_GC_M_MASK},  {0x113C2, 0x113C2, U_GC_M_MASK},  {0x113C5, 0x113C5, U_GC_M_MASK},
    {0x113C7, 0x113CA, U_GC_M_MASK},  {0x113CC, 0x113D0, U_GC_M_MASK},  {0x113D2, 0x113D2, U_GC_M_MASK},
    {0x113E1, 0x113E2, U_GC_M_MASK},  {0x11F5A, 0x11F5A, U_GC_M_MASK},  {0x1611E, 0x1612F, U_GC_M_MASK},
    {0x1E5EE, 0x1E5EF, U_GC_M_MASK},
    {0x10D40, 0x10D49, U_GC_ND_MASK}, {0x116D0, 0x116E3, U_GC_ND_MASK}, {0x11BF0, 0x11BF9, U_GC_ND_MASK},
    {0x16130, 0x16139, U_GC_ND_MASK}, {0x16D70, 0x16D79, U_GC_ND_MASK}, {0x1CCF0, 0x1CCF9, U_GC_ND_MASK},
    {0x1E5F1, 0x1E5FA, U_GC_ND_MASK},
    {0x1B4E, 0x1B4F, U_GC_P_MASK},    {0x1B7F, 0x1B7F, U_GC_P_MASK},    {0x10D6E, 0x10D6E, U_GC_P_MASK},
    {0x113D4, 0x113D5, U_GC_P_MASK},  {0x113D7, 0x113D8, U_GC_P_MASK},  {0x11BE1, 0x11BE1, U_GC_P_MASK},
    {0x16D6D, 0x16D6F, U_GC_P_MASK},  {0x1E5FF, 0x1E5FF, U_GC_P_MASK},
};


}  // namespace

std::span<const AssignedRange> ranges_added_after_unicode15() { return kAddedAfterUnicode15; }

uint32_t category_added_after_unicode15(char32_t c) {
  for (const AssignedRange& r : kAddedAfterUnicode15) {
    if (c >= r.first && c <= r.last) return r.categories;
  }
  return 0;
}

bool is_whitespace(char32_t c) { return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE); }

bool is_numeric(char32_t c) {
  const int8_t type = u_charType(static_cast<UChar32>(c));
  if (type == U_DECIMAL_DIGIT_NUMBER || type == U_LETTER_NUMBER || type == U_OTHER_NUMBER) return true;
  if (type != U_UNASSIGNED) return false;
  // Rust's std tables are Unicode 17, which adds these numbers to Unicode 16's.
  if ((c >= 0x11DE0 && c <= 0x11DE9) || (c >= 0x16FF4 && c <= 0x16FF6)) return true;
  return (category_added_after_unicode15(c) & U_GC_N_MASK) != 0;
}

bool is_punctuation(char32_t c) {
  if (c < 0x80) {
    return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') || (c >= '{' && c <= '~');
  }
  // Two code points were punctuation in Unicode 8 and changed category later.
  if (c == 0x166D || c == 0x111C9) return true;
  const auto cp = static_cast<UChar32>(c);
  if ((U_GET_GC_MASK(cp) & U_GC_P_MASK) == 0) return false;
  UVersionInfo age;
  u_charAge(cp, age);
  return age[0] < 8 || (age[0] == 8 && age[1] == 0);
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
  const uint32_t mask = U_GET_GC_MASK(cp) | category_added_after_unicode15(c);
  return (mask & (U_GC_L_MASK | U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
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
