// Unicode character properties and transforms with the exact definitions the HuggingFace
// `tokenizers` library uses (Rust `char` methods, `regex` classes, `unicode-normalization`),
// backed by ICU's data. Thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace hotswap::tok {

// Code points assigned after Unicode 15.0 (so unknown to ICU 72) that tokenizers' Unicode 16
// tables (Rust std, Oniguruma, regex) classify: letters, marks, decimal digits, punctuation.
struct AssignedRange {
  char32_t first;
  char32_t last;
  uint32_t categories;  // ICU general-category mask; a group mask (M, P) means "some of it"
};
std::span<const AssignedRange> ranges_added_after_unicode15();
// The `categories` of the range holding `c`, or 0.
uint32_t category_added_after_unicode15(char32_t c);

// Rust char::is_whitespace: the Unicode White_Space property.
bool is_whitespace(char32_t c);
// Rust char::is_numeric: general category Nd, Nl or No.
bool is_numeric(char32_t c);
// tokenizers' is_punc: ASCII punctuation, or general category P by Unicode 8 data (the
// unicode_categories crate it uses).
bool is_punctuation(char32_t c);
// A combining mark (general category M) by Unicode 9 data, which tokenizers' StripAccents
// uses (unicode-normalization-alignments).
bool is_unicode9_mark(char32_t c);
// Rust `regex` \w: Alphabetic, Mark, Nd, Pc or Join_Control.
bool is_word_char(char32_t c);

// Rust str::chars().flat_map(char::to_lowercase): the full lowercase mapping of each code
// point taken alone (no Final_Sigma context, no locale). `text` must be valid UTF-8.
std::string to_lowercase(std::string_view text);

enum class NormalizationForm { kNfc, kNfd, kNfkc, kNfkd };
// Unicode normalization of valid UTF-8 text with tokenizers' Unicode 9 tables: characters
// assigned later pass through unchanged.
std::string normalize_unicode(std::string_view text, NormalizationForm form);

}  // namespace hotswap::tok
