// The `post_processor` stage of tokenizer.json, reduced to what encode() needs: the ids it
// adds around a single sequence when add_special_tokens is set. Immutable; thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "tokenizer/json_field.h"

namespace hotswap::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void add_special_tokens(std::vector<int32_t>& ids) const = 0;
};

// Supported types: TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing,
// Sequence. Anything else is a LoadError naming the field.
std::unique_ptr<PostProcessor> make_post_processor(const JsonField& config, int depth = 0);

}  // namespace hotswap::tok
