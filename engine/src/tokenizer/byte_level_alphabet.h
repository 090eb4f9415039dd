// GPT-2's reversible byte <-> printable character mapping (`bytes_to_unicode`), used by the
// ByteLevel pre-tokenizer and decoder. Immutable tables; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hotswap::tok {

// Maps every byte of `bytes` to its printable character, UTF-8 encoded.
std::string byte_level_encode(std::string_view bytes);

// The byte a printable character stands for, or -1 if `c` is not in the alphabet.
int byte_level_decode_char(char32_t c);

}  // namespace hotswap::tok
