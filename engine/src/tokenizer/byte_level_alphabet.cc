#include "tokenizer/byte_level_alphabet.h"

#include <array>

#include "core/utf8.h"

namespace hotswap::tok {
namespace {

struct Alphabet {
  std::array<std::string, 256> byte_to_utf8;
  std::array<int16_t, 512> char_to_byte{};  // every mapped character is below U+0200

  Alphabet() {
    char_to_byte.fill(-1);
    // Printable Latin-1 bytes map to themselves; the rest take U+0100 upwards in byte order.
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t c = printable ? static_cast<char32_t>(b) : next++;
      append_utf8(byte_to_utf8[b], c);
      char_to_byte[c] = static_cast<int16_t>(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet table;
  return table;
}

}  // namespace

std::string byte_level_encode(std::string_view bytes) {
  const Alphabet& a = alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char b : bytes) out += a.byte_to_utf8[static_cast<uint8_t>(b)];
  return out;
}

int byte_level_decode_char(char32_t c) {
  return c < alphabet().char_to_byte.size() ? alphabet().char_to_byte[c] : -1;
}

}  // namespace hotswap::tok
