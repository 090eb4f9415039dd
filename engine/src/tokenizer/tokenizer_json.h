// tokenizer.json in one streaming pass: the two large members, model.vocab and model.merges
// (hundreds of thousands of entries), go straight into flat tables; the rest of the file
// becomes an ordinary nlohmann DOM. Building a DOM for the tables too would dominate load
// time. Load time only.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hotswap::tok {

struct BpeTables {
  struct Merge {
    std::string left;   // the whole "a b" line when !is_pair
    std::string right;
    bool is_pair;       // written as ["a", "b"]
  };
  bool has_vocab = false;   // model.vocab was an object (else it stays in the DOM, if present)
  bool has_merges = false;  // model.merges was an array (likewise)
  std::vector<std::pair<std::string, int64_t>> vocab;  // file order
  std::vector<Merge> merges;                           // file order = rank
};

struct TokenizerJson {
  nlohmann::json document;  // without model.vocab / model.merges when the tables hold them
  BpeTables tables;
};

// Throws LoadError naming `source` on a syntax error or a malformed vocab/merges entry.
TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& source);

}  // namespace hotswap::tok
