// Text <-> token ids for HuggingFace tokenizer.json files, producing exactly the ids and
// text of the `tokenizers` library (0.23) for the components real LLM tokenizers use: BPE
// (merges, byte fallback, ignore_merges), added/special tokens, the common normalizers,
// pre-tokenizers, post-processors and decoders. tokenizer_config.json supplies the special
// token names, the chat template and the add_bos/add_eos flags.
//
// Threading: a loaded Tokenizer is immutable (its BPE word cache locks internally); encode,
// decode and the lookups may run concurrently from any threads. An IncrementalDecoder
// belongs to one stream and is not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hotswap {

namespace tok {
class AddedVocabulary;
class BpeModel;
class Decoder;
class Normalizer;
class PostProcessor;
class PreTokenizer;
}  // namespace tok

// From tokenizer_config.json when present, else defaults.
struct TokenizerConfig {
  std::string bos_token, eos_token, pad_token, unk_token;  // token strings ("" if none)
  std::string chat_template;  // "" if none; of a list of {name, template}, the "default" one
  std::optional<bool> add_bos_token, add_eos_token;
};

class Tokenizer {
 public:
  // path: a tokenizer.json file, or a directory holding tokenizer.json; tokenizer_config.json
  // is read from the same directory when present. Throws LoadError naming the file and field.
  static std::unique_ptr<Tokenizer> load(const std::string& path);
  // The contents of tokenizer.json and of tokenizer_config.json ("" if none). Throws LoadError.
  static std::unique_ptr<Tokenizer> from_json(const std::string& tokenizer_json,
                                              const std::string& tokenizer_config_json);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Added tokens in the text (special ones included) are always recognised;
  // add_special_tokens applies the post-processor (e.g. a leading BOS). Bytes that are not
  // valid UTF-8 are first replaced by U+FFFD, as a lossy UTF-8 conversion does.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // Ids without a token are skipped, as are special tokens when skip_special_tokens is set.
  // The result is valid UTF-8.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  int32_t vocab_size() const;  // max id + 1, added tokens included
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // "" if no token has this id
  bool is_special(int32_t id) const;
  const TokenizerConfig& config() const { return config_; }

 private:
  friend class IncrementalDecoder;

  Tokenizer();
  static std::unique_ptr<Tokenizer> build(const std::string& tokenizer_json, const std::string& json_source,
                                          const std::string& config_json, const std::string& config_source);
  // Normalizes, pre-tokenizes and BPE-encodes one piece of text between added tokens.
  void encode_piece(std::string_view piece, bool at_sequence_start, std::vector<int32_t>& ids) const;
  // The token string decode() uses for `id`, or nullptr (unknown id, or a skipped special).
  const std::string* token_for_decode(int32_t id, bool skip_special_tokens) const;

  std::unique_ptr<tok::AddedVocabulary> added_;
  std::unique_ptr<tok::Normalizer> normalizer_;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<tok::BpeModel> model_;
  std::unique_ptr<tok::PostProcessor> post_processor_;
  std::unique_ptr<tok::Decoder> decoder_;
  TokenizerConfig config_;
  int32_t vocab_size_ = 0;
};

// Streaming detokenization: returns only text that is complete UTF-8 and will not change
// when more tokens arrive (byte-fallback runs, multi-byte characters split over tokens,
// SentencePiece leading-space stripping at sequence start, skipped special tokens).
// Concatenating every push() and then flush() gives decode(all ids, skip_special_tokens)
// whenever that decode contains no U+FFFD produced from invalid bytes. The Tokenizer must
// outlive the decoder. Not thread-safe: one decoder per stream.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tok, bool skip_special_tokens = true);
  std::string push(int32_t id);  // text newly made final by this token (possibly "")
  std::string flush();           // whatever is left at the end (invalid bytes as U+FFFD)

 private:
  // The text made final by the tokens in window_, given that prefix_ was already returned.
  std::string take_new_text(bool at_end);

  const Tokenizer& tok_;
  bool skip_special_tokens_;
  // Ids from the start of the previous emission on: the earlier ones are context, so that
  // decoders that treat the first token specially (leading-space strip) see the same start.
  std::vector<int32_t> window_;
  std::string prefix_;       // decode of window_[0, prefix_length_), already returned
  size_t prefix_length_ = 0;
};

}  // namespace hotswap
