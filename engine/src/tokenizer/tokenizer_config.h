// Reads tokenizer_config.json (transformers' file) into TokenizerConfig. Load time only.
#pragma once

#include <string>

#include "tokenizer/tokenizer.h"

namespace hotswap::tok {

// `json` is the file's contents ("" gives the defaults); `source` names it in errors.
// Throws LoadError naming the field.
TokenizerConfig parse_tokenizer_config(const std::string& json, const std::string& source);

}  // namespace hotswap::tok
