#include "tokenizer/unicode_props.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

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

const UNormalizer2* normalizer_instance(NormalizationForm form) {
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* n = nullptr;
  switch (form) {
    case NormalizationForm::kNfc: n = unorm2_getNFCInstance(&status); break;
    case NormalizationForm::kNfd: n = unorm2_getNFDInstance(&status); break;
    case NormalizationForm::kNfkc: n = unorm2_getNFKCInstance(&status); break;
    case NormalizationForm::kNfkd: n = unorm2_getNFKDInstance(&status); break;
  }
  HS_CHECK(U_SUCCESS(status) && n != nullptr) << "ICU normalizer data missing: " << u_errorName(status);
  return n;
}

}  // namespace

bool is_whitespace(char32_t c) { return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE); }

bool is_numeric(char32_t c) {
  const int8_t type = u_charType(static_cast<UChar32>(c));
  return type == U_DECIMAL_DIGIT_NUMBER || type == U_LETTER_NUMBER || type == U_OTHER_NUMBER;
}

bool is_alphanumeric(char32_t c) {
  return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_ALPHABETIC) || is_numeric(c);
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
