#include "tokenizer/tokenizer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "core/load_error.h"
#include "core/mapped_file.h"
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoders.h"
#include "tokenizer/json_field.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/post_processors.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/tokenizer_config.h"
#include "tokenizer/tokenizer_json.h"
#include "core/utf8.h"

namespace hotswap {

using tok::JsonField;

namespace {

// tokenizers re-derives each added token's id (an existing vocabulary entry keeps its id,
// new ones continue after the vocabulary) and only warns when the file says otherwise.
std::unique_ptr<tok::AddedVocabulary> load_added_tokens(const JsonField& root, const tok::BpeModel& bpe,
                                                        const tok::Normalizer* normalizer,
                                                        const std::string& source) {
  tok::AddedVocabulary::NormalizeFn normalize;
  if (normalizer != nullptr) {
    normalize = [normalizer](const std::string& content) {
      std::string text = content;
      normalizer->normalize(text);
      return text;
    };
  }
  auto added = std::make_unique<tok::AddedVocabulary>(std::move(normalize));
  if (const auto list = root.find("added_tokens")) {
    for (size_t i = 0; i < list->array_size(); ++i) {
      const JsonField entry = list->at(i);
      tok::AddedToken token;
      token.content = entry.at("content").as_string();
      token.special = entry.get_bool("special", false);
      token.lstrip = entry.get_bool("lstrip", false);
      token.rstrip = entry.get_bool("rstrip", false);
      token.single_word = entry.get_bool("single_word", false);
      token.normalized = entry.get_bool("normalized", !token.special);
      const int32_t id = added->add(token, bpe.token_to_id(token.content), bpe.vocab_entries());
      if (id < 0 && !token.content.empty()) entry.fail("no token id left for this added token");
      if (const auto expected = entry.find("id"); expected && id >= 0 && expected->as_int() != id) {
        spdlog::warn("{}: added token '{}' is listed with id {} but gets id {}", source, token.content,
                     expected->as_int(), id);
      }
    }
  }
  added->build_matchers();
  return added;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  const fs::path json_path = is_dir ? fs::path(path) / "tokenizer.json" : fs::path(path);
  const fs::path config_path = json_path.parent_path() / "tokenizer_config.json";
  const std::string json = read_file(json_path.string());
  std::string config;
  if (fs::is_regular_file(config_path, ec)) config = read_file(config_path.string());
  return build(json, json_path.string(), config, config_path.string());
}

std::unique_ptr<Tokenizer> Tokenizer::from_json(const std::string& tokenizer_json,
                                                const std::string& tokenizer_config_json) {
  return build(tokenizer_json, "tokenizer.json", tokenizer_config_json, "tokenizer_config.json");
}

std::unique_ptr<Tokenizer> Tokenizer::build(const std::string& tokenizer_json, const std::string& json_source,
                                            const std::string& config_json, const std::string& config_source) {
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  tok::TokenizerJson parsed = tok::parse_tokenizer_json(tokenizer_json, json_source);
  const JsonField root(parsed.document, "", json_source);
  if (!root.is_object()) root.fail("expected an object, found " + tok::json_kind(parsed.document));
  if (const auto version = root.find("version"); version && version->as_string() != "1.0") {
    version->fail("unknown tokenizer.json version '" + version->as_string() + "' (expected 1.0)");
  }
  for (const char* unsupported : {"truncation", "padding"}) {
    if (root.find(unsupported)) {
      spdlog::warn("{}: '{}' is set; Hotswap ignores it (encode never truncates or pads)", json_source, unsupported);
    }
  }

  const JsonField model = root.at("model");
  const std::string model_type = model.get_string("type", "BPE");
  if (model_type != "BPE") {
    model.at("type").fail("unsupported model type '" + model_type + "' (supported: BPE)");
  }
  tokenizer->model_ = tok::BpeModel::from_json(model, parsed.tables);
  if (const auto f = root.find("normalizer")) tokenizer->normalizer_ = tok::make_normalizer(*f);
  if (const auto f = root.find("pre_tokenizer")) tokenizer->pre_tokenizer_ = tok::make_pre_tokenizer(*f);
  if (const auto f = root.find("post_processor")) tokenizer->post_processor_ = tok::make_post_processor(*f);
  if (const auto f = root.find("decoder")) tokenizer->decoder_ = tok::make_decoder(*f);

  tokenizer->added_ =
      load_added_tokens(root, *tokenizer->model_, tokenizer->normalizer_.get(), json_source);

  tokenizer->vocab_size_ = std::max(tokenizer->model_->max_id(), tokenizer->added_->max_id()) + 1;
  tokenizer->config_ = tok::parse_tokenizer_config(config_json, config_source);
  return tokenizer;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = to_valid_utf8(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const tok::Segment& segment : added_->split(text, /*raw=*/true)) {
    if (segment.token_id >= 0) {
      ids.push_back(segment.token_id);
    } else if (segment.end > segment.start) {
      encode_piece(text.substr(segment.start, segment.end - segment.start), segment.start == 0, ids);
    }
  }
  if (add_special_tokens && post_processor_) post_processor_->add_special_tokens(ids);
  return ids;
}

void Tokenizer::encode_piece(std::string_view piece, bool at_sequence_start, std::vector<int32_t>& ids) const {
  std::string normalized(piece);
  if (normalizer_) normalizer_->normalize(normalized);
  std::vector<tok::PreToken> words;
  for (const tok::Segment& segment : added_->split(normalized, /*raw=*/false)) {
    if (segment.token_id >= 0) {
      ids.push_back(segment.token_id);
      continue;
    }
    if (segment.end == segment.start) continue;
    words.clear();
    words.push_back({normalized.substr(segment.start, segment.end - segment.start),
                     at_sequence_start && segment.start == 0});
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(words);
    for (const tok::PreToken& word : words) model_->tokenize(word.text, ids);
  }
}

const std::string* Tokenizer::token_for_decode(int32_t id, bool skip_special_tokens) const {
  const std::string* token = added_->decode_form(id);
  if (token == nullptr) token = model_->id_to_token(id);
  if (token != nullptr && skip_special_tokens && added_->is_special_content(*token)) return nullptr;
  return token;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const std::string* token = token_for_decode(id, skip_special_tokens)) tokens.push_back(*token);
  }
  return tok::run_decoder(decoder_.get(), std::move(tokens));
}

int32_t Tokenizer::vocab_size() const { return vocab_size_; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const auto id = added_->id_of(token)) return id;
  return model_->token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  const std::string* token = token_for_decode(id, /*skip_special_tokens=*/false);
  return token != nullptr ? *token : std::string();
}

bool Tokenizer::is_special(int32_t id) const {
  const std::string* token = token_for_decode(id, /*skip_special_tokens=*/false);
  return token != nullptr && added_->is_special_content(*token);
}

}  // namespace hotswap
