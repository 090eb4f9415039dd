// Python 3 text semantics the chat-template interpreter needs to be byte-identical
// to jinja2: UTF-8 <-> code points, str.isspace(), case mapping, repr() of str and
// float, and the slice arithmetic of slice.indices(). Pure functions, thread-safe.
//
// Every std::string here is UTF-8. Inputs are expected to be valid UTF-8 (the
// template and the render context are validated at the API boundary); an invalid
// byte decodes as U+FFFD rather than being trusted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/utf8.h"

namespace hotswap::jinja {

using CodePoints = std::vector<char32_t>;

// is_valid_utf8() and append_utf8() come from core/utf8.h.
CodePoints decode_utf8(std::string_view text);
std::string encode_utf8(const CodePoints& cps);
std::string encode_utf8(const CodePoints& cps, size_t begin, size_t end);
// Number of code points (Python len()).
size_t utf8_length(std::string_view text);

// Python str.isspace() for one code point; also what `\s` matches in Python's re.
bool py_isspace(char32_t cp);
// Length in bytes of the Python whitespace character starting at text[pos], or 0.
size_t py_space_at(std::string_view text, size_t pos);

// Python str.strip()/lstrip()/rstrip(); `chars` = nullopt strips whitespace.
std::string py_strip(std::string_view text, const std::optional<std::string>& chars, bool left, bool right);

// Simple Unicode case mapping (glibc C.UTF-8 tables) plus the 'ß' -> "SS" special case
// that Python applies in upper().
std::string py_upper(std::string_view text);
std::string py_lower(std::string_view text);
std::string py_title(std::string_view text);       // str.title()
std::string py_capitalize(std::string_view text);  // str.capitalize()
char32_t upper_cp(char32_t cp);
char32_t lower_cp(char32_t cp);
bool is_cased_cp(char32_t cp);
bool is_upper_cp(char32_t cp);
bool is_lower_cp(char32_t cp);
bool is_alpha_cp(char32_t cp);
bool is_digit_cp(char32_t cp);

// repr() of a str: quotes chosen and characters escaped as CPython does.
std::string py_repr_string(std::string_view text);
// repr()/str() of a float: shortest round-trip digits, Python's fixed/exponent rule.
std::string py_float_repr(double value);

// slice.indices(length) followed by the element positions a slice selects.
// Throws std::invalid_argument for a zero step.
std::vector<int64_t> slice_positions(int64_t length, std::optional<int64_t> start, std::optional<int64_t> stop,
                                     std::optional<int64_t> step);

}  // namespace hotswap::jinja
