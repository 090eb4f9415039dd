// The `added_tokens` of tokenizer.json: tokens found verbatim in the text before the model
// sees it (special tokens such as <|im_start|>, and user-added ones). Ids and matching follow
// tokenizers' AddedVocabulary: leftmost-longest over the raw text for normalized=false
// tokens, then over each normalized piece for normalized=true tokens, honouring lstrip,
// rstrip and single_word.
// Built once at load (add() for each token, then build_matchers()); immutable and
// thread-safe afterwards.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace hotswap::tok {

struct AddedToken {
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = true;
  bool operator==(const AddedToken&) const = default;
};

// One piece of a split: [start, end) of the searched text; token_id >= 0 for an added token.
struct Segment {
  size_t start;
  size_t end;
  int32_t token_id;
};

// Leftmost-longest literal matcher over bytes (a trie walked from each position).
class LiteralMatcher {
 public:
  struct Match {
    size_t start;
    size_t end;
    int32_t value;
  };
  // A pattern added twice keeps its first value (aho-corasick reports the first pattern).
  void add(std::string_view pattern, int32_t value);
  // Non-overlapping matches: at the leftmost position where any pattern matches, the longest.
  std::vector<Match> find_all(std::string_view text) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // (byte, node index)
    int32_t value = -1;
  };
  int32_t child(int32_t node, uint8_t byte) const;
  std::vector<Node> nodes_{Node{}};
  bool first_bytes_[256] = {};
};

class AddedVocabulary {
 public:
  // Rewrites the content of a normalized=true token the way the tokenizer's normalizer
  // does; empty when the tokenizer has no normalizer.
  using NormalizeFn = std::function<std::string(const std::string&)>;
  explicit AddedVocabulary(NormalizeFn normalize) : normalize_(std::move(normalize)) {}

  // Registers one added_tokens entry as tokenizers' add_tokens does and returns the id it
  // gets (-1 for empty content, or when a new id would pass kMaxTokenId). `model_id` is the
  // content's id in the model vocabulary, if any; `model_vocab_size` is the model's number of
  // entries (where new ids start).
  int32_t add(const AddedToken& token, std::optional<int32_t> model_id, size_t model_vocab_size);
  // Builds the matchers from the registered tokens; call once, after the last add().
  void build_matchers();

  // Splits `text` on the normalized=false tokens (`raw`) or on the normalized=true ones.
  std::vector<Segment> split(std::string_view text, bool raw) const;

  const AddedToken* token(int32_t id) const;
  // The string decode() uses for an added token: its normalized form when normalization
  // changed it (so the decoder can invert it), else its content. nullptr if not added.
  const std::string* decode_form(int32_t id) const;
  std::optional<int32_t> id_of(std::string_view content) const;
  bool is_special_content(std::string_view content) const;
  int32_t max_id() const { return max_id_; }

 private:
  NormalizeFn normalize_;
  std::unordered_map<int32_t, AddedToken> by_id_;
  std::unordered_map<std::string, int32_t> by_content_;
  std::unordered_map<int32_t, std::string> normalized_forms_;
  std::unordered_set<std::string> special_contents_;
  LiteralMatcher raw_matcher_;
  LiteralMatcher normalized_matcher_;
  int32_t max_id_ = -1;
};

}  // namespace hotswap::tok
