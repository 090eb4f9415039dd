#include "tokenizer/pre_tokenizers.h"

#include <functional>
#include <utility>

#include "tokenizer/byte_level_alphabet.h"
#include "tokenizer/pattern_field.h"
#include "tokenizer/split.h"
#include "tokenizer/unicode_props.h"
#include "core/utf8.h"

namespace hotswap::tok {
namespace {

constexpr int kMaxDepth = 32;

// GPT-2's pre-tokenization regex, which ByteLevel applies when use_regex is set.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Applies `split_one` to every piece and keeps the non-empty results; only the first
// sub-piece of a piece can still be at the start of the sequence.
template <typename SplitOne>
void split_each(std::vector<PreToken>& pieces, SplitOne&& split_one) {
  std::vector<PreToken> out;
  out.reserve(pieces.size());
  for (PreToken& piece : pieces) {
    bool first = true;
    for (std::string_view part : split_one(piece)) {
      if (!part.empty()) out.push_back({std::string(part), piece.at_sequence_start && first});
      first = false;
    }
  }
  pieces = std::move(out);
}

SplitBehavior parse_behavior(const JsonField& field) {
  const std::string name = field.as_string();
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  field.fail("unknown split behavior '" + name +
             "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

SplitBehavior behavior_or(const JsonField& config, SplitBehavior fallback) {
  const auto field = config.find("behavior");
  return field ? parse_behavior(*field) : fallback;
}

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    for (const auto& step : steps_) step->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    split_each(pieces, [&](const PreToken& piece) {
      std::vector<Span> spans = find_spans(pattern_, piece.text);
      if (invert_) invert_spans(spans);
      return split_text(piece.text, std::move(spans), behavior_);
    });
  }

 private:
  Regex pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// Splits on a character predicate (Digits, WhitespaceSplit, Punctuation, ...).
class CharClassPreTokenizer final : public PreTokenizer {
 public:
  CharClassPreTokenizer(std::function<bool(char32_t)> predicate, SplitBehavior behavior)
      : predicate_(std::move(predicate)), behavior_(behavior) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    split_each(pieces, [&](const PreToken& piece) {
      return split_text(piece.text, find_spans(piece.text, predicate_), behavior_);
    });
  }

 private:
  std::function<bool(char32_t)> predicate_;
  SplitBehavior behavior_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex), regex_(kGpt2Pattern) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    for (PreToken& piece : pieces) {
      if (add_prefix_space_ && !piece.text.empty() && piece.text[0] != ' ') piece.text = " " + piece.text;
    }
    if (use_regex_) {
      split_each(pieces, [&](const PreToken& piece) {
        return split_text(piece.text, find_spans(regex_, piece.text), SplitBehavior::kIsolated);
      });
    }
    for (PreToken& piece : pieces) piece.text = byte_level_encode(piece.text);
  }

 private:
  bool add_prefix_space_;
  bool use_regex_;
  Regex regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement), scheme_(scheme), split_(split) {
    append_utf8(replacement_utf8_, replacement);
  }
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    for (PreToken& piece : pieces) {
      std::string replaced;
      replaced.reserve(piece.text.size() + 8);
      for (char c : piece.text) {
        if (c == ' ') {
          replaced += replacement_utf8_;
        } else {
          replaced += c;
        }
      }
      const bool starts_with_replacement = replaced.compare(0, replacement_utf8_.size(), replacement_utf8_) == 0;
      const bool prepend = !replaced.empty() && !starts_with_replacement &&
                           (scheme_ == PrependScheme::kAlways ||
                            (scheme_ == PrependScheme::kFirst && piece.at_sequence_start));
      if (prepend) replaced.insert(0, replacement_utf8_);
      piece.text = std::move(replaced);
    }
    if (!split_) return;
    const char32_t replacement = replacement_;
    split_each(pieces, [&](const PreToken& piece) {
      return split_text(piece.text, find_spans(piece.text, [replacement](char32_t c) { return c == replacement; }),
                        SplitBehavior::kMergedWithNext);
    });
  }

 private:
  char32_t replacement_;
  std::string replacement_utf8_;
  PrependScheme scheme_;
  bool split_;
};

std::unique_ptr<PreTokenizer> make_metaspace(const JsonField& config) {
  const char32_t replacement = config.at("replacement").as_char();
  PrependScheme scheme = PrependScheme::kAlways;
  if (const auto field = config.find("prepend_scheme")) {
    const std::string name = field->as_string();
    if (name == "always") {
      scheme = PrependScheme::kAlways;
    } else if (name == "first") {
      scheme = PrependScheme::kFirst;
    } else if (name == "never") {
      scheme = PrependScheme::kNever;
    } else {
      field->fail("unknown prepend_scheme '" + name + "' (expected always, first or never)");
    }
  }
  // Files written before prepend_scheme existed say add_prefix_space instead.
  if (const auto legacy = config.find("add_prefix_space"); legacy && !legacy->as_bool()) scheme = PrependScheme::kNever;
  return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, config.get_bool("split", true));
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonField& config, int depth) {
  if (depth > kMaxDepth) config.fail("pre-tokenizers nested deeper than " + std::to_string(kMaxDepth));
  const std::string type = config.at("type").as_string();
  if (type == "Sequence") {
    const JsonField list = config.at("pretokenizers");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.array_size(); ++i) steps.push_back(make_pre_tokenizer(list.at(i), depth + 1));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(parse_pattern(config.at("pattern")), parse_behavior(config.at("behavior")),
                                               config.get_bool("invert", false));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(config.get_bool("add_prefix_space", true),
                                                   config.get_bool("use_regex", true));
  }
  if (type == "Metaspace") return make_metaspace(config);
  if (type == "Digits") {
    const bool individual = config.get_bool("individual_digits", false);
    return std::make_unique<CharClassPreTokenizer>(is_numeric,
                                                   individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous);
  }
  if (type == "Whitespace") {
    // tokenizers splits on `\w+|[^\w\s]+` and drops what falls between the matches.
    return std::make_unique<SplitPreTokenizer>(Regex(R"(\w+|[^\w\s]+)"), SplitBehavior::kRemoved, /*invert=*/true);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<CharClassPreTokenizer>(is_whitespace, SplitBehavior::kRemoved);
  }
  if (type == "Punctuation") {
    return std::make_unique<CharClassPreTokenizer>(is_punctuation, behavior_or(config, SplitBehavior::kIsolated));
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    steps.push_back(std::make_unique<CharClassPreTokenizer>(is_whitespace, SplitBehavior::kRemoved));
    steps.push_back(std::make_unique<CharClassPreTokenizer>(is_punctuation, SplitBehavior::kIsolated));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "CharDelimiterSplit") {
    const char32_t delimiter = config.at("delimiter").as_char();
    return std::make_unique<CharClassPreTokenizer>([delimiter](char32_t c) { return c == delimiter; },
                                                   SplitBehavior::kRemoved);
  }
  config.at("type").fail("unsupported pre-tokenizer type '" + type +
                         "' (supported: Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit, "
                         "Punctuation, BertPreTokenizer, CharDelimiterSplit)");
}

}  // namespace hotswap::tok
