// UTF-8 primitives shared by the tokenizer stages and the chat-template interpreter. Byte offsets everywhere; nothing here
// allocates except the functions returning std::string. All functions are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/utf8.h"  // valid_utf8_prefix, is_valid_utf8

namespace hotswap {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Length of the UTF-8 sequence starting with `lead` (1 for ASCII and for stray bytes).
inline size_t utf8_sequence_length(uint8_t lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Decodes the code point at text[pos]; `text` must be valid UTF-8 and pos a char boundary.
// Stores the sequence length in *length.
char32_t decode_utf8(std::string_view text, size_t pos, size_t* length);

void append_utf8(std::string& out, char32_t code_point);

// Rust's String::from_utf8_lossy: every maximal ill-formed subsequence (Unicode's
// "substitution of maximal subparts") becomes one U+FFFD. Valid input is returned unchanged.
std::string to_valid_utf8(std::string_view bytes);

}  // namespace hotswap
