#include "tokenizer/normalizers.h"

#include <vector>

#include "tokenizer/byte_level_alphabet.h"
#include "tokenizer/pattern_field.h"
#include "tokenizer/split.h"
#include "tokenizer/unicode_props.h"
#include "core/utf8.h"

namespace hotswap::tok {
namespace {

constexpr int kMaxDepth = 32;

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override {
    for (const auto& step : steps_) step->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

// Prepend and Append leave an empty piece empty, as NormalizedString::prepend does.
class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class AppendNormalizer final : public Normalizer {
 public:
  explicit AppendNormalizer(std::string suffix) : suffix_(std::move(suffix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text += suffix_;
  }

 private:
  std::string suffix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override { text = replace_all(pattern_, text, content_); }

 private:
  Regex pattern_;
  std::string content_;
};

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalizationForm form) : form_(form) {}
  void normalize(std::string& text) const override { text = normalize_unicode(text, form_); }

 private:
  NormalizationForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = to_lowercase(text); }
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0;
    size_t end = text.size();
    if (left_) {
      while (begin < end) {
        size_t length = 0;
        if (!is_whitespace(decode_utf8(text, begin, &length))) break;
        begin += length;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
        size_t length = 0;
        if (!is_whitespace(decode_utf8(text, start, &length))) break;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_;
  bool right_;
};

// Drops combining marks as tokenizers' StripAccents does (by Unicode 9 categories); it is
// meant to follow an NFD/NFKD step.
class StripAccentsNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
      size_t length = 0;
      const char32_t c = decode_utf8(text, pos, &length);
      if (!is_unicode9_mark(c)) out.append(text, pos, length);
      pos += length;
    }
    text = std::move(out);
  }
};

class ByteLevelNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = byte_level_encode(text); }
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const JsonField& config, int depth) {
  if (depth > kMaxDepth) config.fail("normalizers nested deeper than " + std::to_string(kMaxDepth));
  const std::string type = config.at("type").as_string();
  if (type == "Sequence") {
    const JsonField list = config.at("normalizers");
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.array_size(); ++i) steps.push_back(make_normalizer(list.at(i), depth + 1));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(config.at("prepend").as_string());
  if (type == "Append") return std::make_unique<AppendNormalizer>(config.at("append").as_string());
  if (type == "Replace") {
    Regex pattern = parse_pattern(config.at("pattern"));
    // A pattern matching "" would insert the content between every two characters; no real
    // tokenizer does that, and a chain of them grows the text exponentially.
    if (!pattern.find_all("").empty()) config.at("pattern").fail("pattern matches the empty string");
    return std::make_unique<ReplaceNormalizer>(std::move(pattern), config.at("content").as_string());
  }
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalizationForm::kNfc);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalizationForm::kNfd);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalizationForm::kNfkc);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalizationForm::kNfkd);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(config.get_bool("strip_left", true), config.get_bool("strip_right", true));
  }
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  config.at("type").fail("unsupported normalizer type '" + type +
                         "' (supported: Sequence, Prepend, Append, Replace, NFC, NFD, NFKC, NFKD, Lowercase, "
                         "Strip, StripAccents, ByteLevel)");
}

}  // namespace hotswap::tok
