// The `normalizer` stage of tokenizer.json: rewrites the text of each piece between added
// tokens before pre-tokenization. Instances are immutable after construction and
// thread-safe. Text in and out is valid UTF-8.
#pragma once

#include <memory>
#include <string>

#include "tokenizer/json_field.h"

namespace hotswap::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// Supported types: Sequence, Prepend, Append, Replace, NFC, NFD, NFKC, NFKD, Lowercase,
// Strip, StripAccents, ByteLevel. Anything else is a LoadError naming the field.
// `depth` bounds nested Sequences.
std::unique_ptr<Normalizer> make_normalizer(const JsonField& config, int depth = 0);

}  // namespace hotswap::tok
