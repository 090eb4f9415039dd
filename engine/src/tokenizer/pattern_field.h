// The {"String": "..."} / {"Regex": "..."} pattern objects of Split, Replace and their
// decoders, compiled the way tokenizers does (a String is matched literally). Load time only.
#pragma once

#include "tokenizer/json_field.h"
#include "tokenizer/regex.h"

namespace hotswap::tok {

// Throws LoadError naming the field when the object is malformed or the regex does not compile.
Regex parse_pattern(const JsonField& pattern);

}  // namespace hotswap::tok
