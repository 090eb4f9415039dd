#include "tokenizer/added_vocabulary.h"

#include <algorithm>

#include "tokenizer/json_field.h"
#include "tokenizer/unicode_props.h"
#include "core/utf8.h"

namespace hotswap::tok {
namespace {

// The last character of `text` (valid UTF-8, non-empty).
char32_t last_char(std::string_view text) {
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
  size_t length = 0;
  return decode_utf8(text, start, &length);
}

bool ends_with_word(std::string_view text) { return !text.empty() && is_word_char(last_char(text)); }

bool starts_with_word(std::string_view text) {
  size_t length = 0;
  return !text.empty() && is_word_char(decode_utf8(text, 0, &length));
}

// Start of the whitespace run that ends `text` (`\s*$`).
size_t leftmost_space_at_end(std::string_view text) {
  size_t pos = text.size();
  while (pos > 0) {
    size_t start = pos - 1;
    while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
    size_t length = 0;
    if (!is_whitespace(decode_utf8(text, start, &length))) break;
    pos = start;
  }
  return pos;
}

// End of the whitespace run that starts `text` (`^\s*`).
size_t rightmost_space_at_start(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t length = 0;
    if (!is_whitespace(decode_utf8(text, pos, &length))) break;
    pos += length;
  }
  return pos;
}

}  // namespace

void LiteralMatcher::add(std::string_view pattern, int32_t value) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (char c : pattern) {
    const auto byte = static_cast<uint8_t>(c);
    int32_t next = child(node, byte);
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_.emplace_back();
      nodes_[static_cast<size_t>(node)].children.emplace_back(byte, next);
    }
    node = next;
  }
  if (nodes_[static_cast<size_t>(node)].value < 0) nodes_[static_cast<size_t>(node)].value = value;
  first_bytes_[static_cast<uint8_t>(pattern[0])] = true;
}

int32_t LiteralMatcher::child(int32_t node, uint8_t byte) const {
  for (const auto& [b, next] : nodes_[static_cast<size_t>(node)].children) {
    if (b == byte) return next;
  }
  return -1;
}

std::vector<LiteralMatcher::Match> LiteralMatcher::find_all(std::string_view text) const {
  std::vector<Match> matches;
  if (nodes_.size() <= 1) return matches;
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_bytes_[static_cast<uint8_t>(text[pos])]) {
      ++pos;
      continue;
    }
    int32_t node = 0;
    size_t best_end = 0;
    int32_t best_value = -1;
    for (size_t i = pos; i < text.size(); ++i) {
      node = child(node, static_cast<uint8_t>(text[i]));
      if (node < 0) break;
      if (nodes_[static_cast<size_t>(node)].value >= 0) {
        best_end = i + 1;
        best_value = nodes_[static_cast<size_t>(node)].value;
      }
    }
    if (best_value >= 0) {
      matches.push_back({pos, best_end, best_value});
      pos = best_end;
    } else {
      ++pos;
    }
  }
  return matches;
}

int32_t AddedVocabulary::add(const AddedToken& token, std::optional<int32_t> model_id, size_t model_vocab_size) {
  if (token.content.empty()) return -1;
  const auto existing = by_content_.find(token.content);
  if (existing != by_content_.end()) {
    // An identical token is ignored; a content always keeps the id it first got.
    const auto known = by_id_.find(existing->second);
    if (known != by_id_.end() && known->second == token) return existing->second;
  }
  int32_t new_id = 0;
  if (existing != by_content_.end()) {
    new_id = existing->second;
  } else if (model_id) {
    new_id = *model_id;
  } else {
    // New ids start at the model's size, or continue after the largest added id already
    // past it; tokenizers does the same.
    const auto vocab_size = static_cast<int32_t>(model_vocab_size);
    new_id = vocab_size;
    if (!by_id_.empty() && (max_id_ >= vocab_size || vocab_size == 0)) {
      if (max_id_ >= kMaxTokenId) return -1;
      new_id = max_id_ + 1;
    }
  }
  if (token.normalized && normalize_) {
    std::string normalized = normalize_(token.content);
    if (normalized != token.content) normalized_forms_[new_id] = std::move(normalized);
  }
  by_content_[token.content] = new_id;
  if (token.special) special_contents_.insert(token.content);
  by_id_[new_id] = token;
  max_id_ = std::max(max_id_, new_id);
  return new_id;
}

void AddedVocabulary::build_matchers() {
  // tokenizers walks a hash map here, so which of two tokens with the same pattern wins is
  // unspecified there; ascending ids make it deterministic.
  std::vector<int32_t> ids;
  ids.reserve(by_id_.size());
  for (const auto& [id, token] : by_id_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (int32_t id : ids) {
    const AddedToken& token = by_id_.at(id);
    if (token.normalized) {
      const auto form = normalized_forms_.find(id);
      normalized_matcher_.add(form != normalized_forms_.end() ? form->second : token.content, id);
    } else {
      raw_matcher_.add(token.content, id);
    }
  }
}

std::vector<Segment> AddedVocabulary::split(std::string_view text, bool raw) const {
  if (text.empty()) return {{0, 0, -1}};
  std::vector<Segment> segments;
  size_t start_offset = 0;
  for (const LiteralMatcher::Match& m : (raw ? raw_matcher_ : normalized_matcher_).find_all(text)) {
    size_t start = m.start;
    size_t stop = m.end;
    const AddedToken* added = token(m.value);
    if (added == nullptr) continue;
    if (added->single_word) {
      const bool start_space = start == 0 || !ends_with_word(text.substr(0, start));
      const bool stop_space = stop == text.size() || !starts_with_word(text.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (added->lstrip) {
      // Whitespace an earlier match already took (through its rstrip) stays with it.
      start = std::max(leftmost_space_at_end(text.substr(0, start)), start_offset);
    }
    if (added->rstrip) stop += rightmost_space_at_start(text.substr(stop));
    // An earlier rstrip can reach past this whole match; tokenizers panics on the reversed
    // range it would slice, so keep the range well-formed instead.
    start = std::min(start, stop);
    if (start_offset < start) segments.push_back({start_offset, start, -1});
    segments.push_back({start, stop, m.value});
    start_offset = stop;
  }
  if (start_offset != text.size()) segments.push_back({start_offset, text.size(), -1});
  return segments;
}

const AddedToken* AddedVocabulary::token(int32_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

const std::string* AddedVocabulary::decode_form(int32_t id) const {
  const auto it = by_id_.find(id);
  if (it == by_id_.end()) return nullptr;
  const auto form = normalized_forms_.find(id);
  return form != normalized_forms_.end() ? &form->second : &it->second.content;
}

std::optional<int32_t> AddedVocabulary::id_of(std::string_view content) const {
  const auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

bool AddedVocabulary::is_special_content(std::string_view content) const {
  return special_contents_.contains(std::string(content));
}


}  // namespace hotswap::tok
