// The `pre_tokenizer` stage of tokenizer.json: cuts each normalized piece into the words
// the model tokenizes independently. Instances are immutable after construction and
// thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_field.h"

namespace hotswap::tok {

// One piece of the input on its way to the model.
struct PreToken {
  std::string text;        // valid UTF-8
  bool at_sequence_start;  // begins at offset 0 of the original input (Metaspace "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every piece by the pieces it splits into, in order; empty pieces are dropped
  // (PreTokenizedString::split).
  virtual void pre_tokenize(std::vector<PreToken>& pieces) const = 0;
};

// Supported types: Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace,
// WhitespaceSplit, Punctuation, BertPreTokenizer, CharDelimiterSplit. Anything else is a
// LoadError naming the field. `depth` bounds nested Sequences.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonField& config, int depth = 0);

}  // namespace hotswap::tok
