// UTF-8 validation for the edges that take text from outside (request bodies, adapter names).
// The engine's own UTF-8 primitives (core/utf8.h) build on these.
#pragma once

#include <cstddef>
#include <string_view>

namespace hotswap {

// Length of the longest valid UTF-8 prefix of `text`.
std::size_t valid_utf8_prefix(std::string_view text);
inline bool is_valid_utf8(std::string_view text) { return valid_utf8_prefix(text) == text.size(); }

}  // namespace hotswap
