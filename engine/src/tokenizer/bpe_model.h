// The BPE `model` of tokenizer.json: vocabulary, ranked merges, unknown-token and
// byte-fallback handling, applied to one pre-token at a time exactly as tokenizers' BPE
// does. Immutable after loading except for the internal word cache; tokenize() is
// thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/json_field.h"
#include "tokenizer/merge_table.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/word_cache.h"

namespace hotswap::tok {

class BpeModel {
 public:
  // `model` is the "model" object of tokenizer.json; `tables` its vocab and merges when the
  // streaming parser took them out of the DOM (else they are read from `model`). Consumes
  // `tables`. Throws LoadError naming the field.
  static std::unique_ptr<BpeModel> from_json(const JsonField& model, BpeTables& tables);

  // Appends the ids of one pre-token (non-empty, valid UTF-8) to `ids`.
  void tokenize(std::string_view word, std::vector<int32_t>& ids) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // nullptr if no vocabulary entry has this id.
  const std::string* id_to_token(int32_t id) const;
  // Number of vocabulary entries (tokenizers' get_vocab_size) and the largest id (-1 if none).
  size_t vocab_entries() const { return vocab_.size(); }
  int32_t max_id() const { return max_id_; }

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

  BpeModel() : merges_(0) {}
  // Splits into characters, maps them to ids (unknown / byte fallback), then merges.
  void merge_word(std::string_view word, std::vector<int32_t>& ids) const;
  std::optional<int32_t> find(std::string_view token) const;

  Vocab vocab_;
  std::unordered_map<int32_t, const std::string*> vocab_r_;  // points into vocab_'s keys
  int32_t max_id_ = -1;
  MergeTable merges_;
  std::optional<std::string> continuing_subword_prefix_;
  std::optional<std::string> end_of_word_suffix_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::vector<int32_t> byte_ids_;  // id of "<0xNN>" for each byte, -1 if absent
  WordCache cache_;
};

}  // namespace hotswap::tok
