// SHA-256 of a byte string (FIPS 180-4), as 64 lowercase hex digits. Used to identify an
// adapter version by the exact bytes it was loaded from. Pure function; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace hotswap {

std::string sha256_hex(std::string_view bytes);

}  // namespace hotswap
