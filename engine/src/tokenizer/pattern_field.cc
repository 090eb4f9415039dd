#include "tokenizer/pattern_field.h"

#include <stdexcept>

namespace hotswap::tok {

Regex parse_pattern(const JsonField& pattern) {
  if (const auto literal = pattern.find("String")) return Regex::literal(literal->as_string());
  if (const auto regex = pattern.find("Regex")) {
    try {
      return Regex(regex->as_string());
    } catch (const std::invalid_argument& e) {
      regex->fail(e.what());
    }
  }
  pattern.fail("expected {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace hotswap::tok
