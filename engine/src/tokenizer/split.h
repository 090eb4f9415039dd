// tokenizers' Pattern::find_matches and NormalizedString::split, on plain strings: a text is
// cut into spans that alternately match a pattern or not, then the spans are regrouped
// according to a SplitBehavior. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace hotswap::tok {

struct Span {
  size_t start;  // byte offsets
  size_t end;
  bool is_match;
};

// Covers the whole text with matched and unmatched spans in order; empty text gives the
// single span {0, 0, false}.
std::vector<Span> find_spans(const Regex& regex, std::string_view text);
// Each character for which `predicate` holds is a matched span of its own.
std::vector<Span> find_spans(std::string_view text, const std::function<bool(char32_t)>& predicate);
// Flips is_match on every span (the Split pre-tokenizer's `invert`).
void invert_spans(std::vector<Span>& spans);

// Every match of `regex` in `text` replaced by `content` (NormalizedString::replace and the
// Replace decoder).
std::string replace_all(const Regex& regex, std::string_view text, std::string_view content);

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// The pieces `text` splits into; empty pieces are kept here (callers drop them, as
// PreTokenizedString::split does).
std::vector<std::string_view> split_text(std::string_view text, std::vector<Span> spans, SplitBehavior behavior);

}  // namespace hotswap::tok
