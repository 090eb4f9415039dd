#include "tokenizer/split.h"

#include <algorithm>

#include "core/utf8.h"

namespace hotswap::tok {

std::vector<Span> find_spans(const Regex& regex, std::string_view text) {
  if (text.empty()) return {{0, 0, false}};
  std::vector<Span> spans;
  size_t previous = 0;
  for (const Regex::Match& m : regex.find_all(text)) {
    if (m.start != previous) spans.push_back({previous, m.start, false});
    spans.push_back({m.start, m.end, true});
    previous = m.end;
  }
  if (previous != text.size()) spans.push_back({previous, text.size(), false});
  return spans;
}

std::vector<Span> find_spans(std::string_view text, const std::function<bool(char32_t)>& predicate) {
  if (text.empty()) return {{0, 0, false}};
  std::vector<Span> spans;
  size_t last_offset = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t length = 0;
    const char32_t c = decode_utf8(text, pos, &length);
    if (predicate(c)) {
      if (last_offset < pos) spans.push_back({last_offset, pos, false});
      spans.push_back({pos, pos + length, true});
      last_offset = pos + length;
    }
    pos += length;
  }
  if (pos > last_offset) spans.push_back({last_offset, pos, false});
  return spans;
}

std::string replace_all(const Regex& regex, std::string_view text, std::string_view content) {
  std::string out;
  out.reserve(text.size());
  for (const Span& s : find_spans(regex, text)) {
    if (s.is_match) {
      out += content;
    } else {
      out += text.substr(s.start, s.end - s.start);
    }
  }
  return out;
}

void invert_spans(std::vector<Span>& spans) {
  for (Span& s : spans) s.is_match = !s.is_match;
}

std::vector<std::string_view> split_text(std::string_view text, std::vector<Span> spans, SplitBehavior behavior) {
  // Regroup into (range, keep) pieces exactly as NormalizedString::split does.
  struct Piece {
    size_t start, end;
    bool remove;
  };
  std::vector<Piece> pieces;
  pieces.reserve(spans.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) pieces.push_back({s.start, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans) pieces.push_back({s.start, s.end, s.is_match});
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !pieces.empty()) {
          pieces.back().end = s.end;
        } else {
          pieces.push_back({s.start, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !pieces.empty()) {
          pieces.back().end = s.end;
        } else {
          pieces.push_back({s.start, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !pieces.empty()) {
          pieces.back().start = it->start;
        } else {
          pieces.push_back({it->start, it->end, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    }
  }
  std::vector<std::string_view> out;
  out.reserve(pieces.size());
  for (const Piece& p : pieces) {
    if (!p.remove) out.push_back(text.substr(p.start, p.end - p.start));
  }
  return out;
}

}  // namespace hotswap::tok
