// Unicode character properties and transforms with the exact definitions the HuggingFace
// `tokenizers` library uses (Rust `char` methods, `regex` classes, `unicode-normalization`),
// backed by ICU's data. Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace hotswap::tok {

// Rust char::is_whitespace: the Unicode White_Space property.
bool is_whitespace(char32_t c);
// Rust char::is_numeric: general category Nd, Nl or No.
bool is_numeric(char32_t c);
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
