#include "tokenizer/decoders.h"

#include <algorithm>

#include "tokenizer/byte_level_alphabet.h"
#include "tokenizer/pattern_field.h"
#include "tokenizer/split.h"
#include "core/utf8.h"

namespace hotswap::tok {
namespace {

constexpr int kMaxDepth = 32;

std::u32string to_chars(std::string_view text) {
  std::u32string chars;
  chars.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    size_t length = 0;
    chars.push_back(decode_utf8(text, pos, &length));
    pos += length;
  }
  return chars;
}

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }
  bool merges_byte_runs() const override {
    return std::any_of(steps_.begin(), steps_.end(), [](const auto& s) { return s->merges_byte_runs(); });
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

// All tokens become one byte string (a token with a character outside the byte alphabet
// contributes its UTF-8 bytes as they are), decoded lossily.
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& token : tokens) {
      const size_t mark = bytes.size();
      bool all_mapped = true;
      for (size_t pos = 0; pos < token.size();) {
        size_t length = 0;
        const int b = byte_level_decode_char(decode_utf8(token, pos, &length));
        if (b < 0) {
          all_mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
        pos += length;
      }
      if (!all_mapped) {
        bytes.resize(mark);
        bytes += token;
      }
    }
    tokens.assign(1, to_valid_utf8(bytes));
  }
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) token = replace_all(pattern_, token, content_);
  }

 private:
  Regex pattern_;
  std::string content_;
};

// Runs of <0xNN> tokens become their UTF-8 text, or one U+FFFD per byte when the run is
// not valid UTF-8 as a whole.
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string run;
    auto flush_run = [&] {
      if (run.empty()) return;
      if (is_valid_utf8(run)) {
        out.push_back(run);
      } else {
        for (size_t i = 0; i < run.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      run.clear();
    };
    for (std::string& token : tokens) {
      const int b = parse_byte_token(token);
      if (b >= 0) {
        run.push_back(static_cast<char>(b));
        continue;
      }
      flush_run();
      out.push_back(std::move(token));
    }
    flush_run();
    tokens = std::move(out);
  }
  bool merges_byte_runs() const override { return true; }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const std::string& token : tokens) joined += token;
    tokens.assign(1, std::move(joined));
  }
};

// Removes up to `start` leading and `stop` trailing `content` characters from each token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      const std::u32string chars = to_chars(token);
      size_t start_cut = 0;
      for (size_t i = 0; i < std::min(start_, chars.size()) && chars[i] == content_; ++i) start_cut = i + 1;
      size_t stop_cut = chars.size();
      for (size_t i = 0; i < std::min(stop_, chars.size()) && chars[chars.size() - i - 1] == content_; ++i) {
        stop_cut = chars.size() - i - 1;
      }
      std::string out;
      for (size_t i = start_cut; i < stop_cut; ++i) append_utf8(out, chars[i]);
      token = std::move(out);
    }
  }

 private:
  char32_t content_;
  size_t start_;
  size_t stop_;
};

// The replacement character becomes a space, except in the first token, where it is dropped
// (it was the prepended prefix) unless the prepend scheme is "never".
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool prepends) : replacement_(replacement), prepends_(prepends) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      out.reserve(tokens[i].size());
      for (char32_t c : to_chars(tokens[i])) {
        if (c != replacement_) {
          append_utf8(out, c);
        } else if (i != 0 || !prepends_) {
          out += ' ';
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  bool prepends_;
};

// The end-of-word suffix becomes a space, except on the last token.
class BpeSuffixDecoder final : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (suffix_.empty()) return;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string replacement = i + 1 == tokens.size() ? "" : " ";
      std::string out;
      const std::string& token = tokens[i];
      for (size_t pos = 0;;) {
        const size_t found = token.find(suffix_, pos);
        if (found == std::string::npos) {
          out.append(token, pos);
          break;
        }
        out.append(token, pos, found - pos);
        out += replacement;
        pos = found + suffix_.size();
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string suffix_;
};

size_t non_negative(const JsonField& config, std::string_view key) {
  const auto field = config.find(key);
  if (!field) return 0;
  const int64_t value = field->as_int();
  if (value < 0) field->fail("expected a non-negative integer");
  return static_cast<size_t>(value);
}

}  // namespace

int parse_byte_token(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int low = hex(token[4]);
  // Rust's u8::from_str_radix, which tokenizers uses here, also takes a leading '+'.
  if (token[3] == '+') return low;
  const int high = hex(token[3]);
  return high < 0 || low < 0 ? -1 : high * 16 + low;
}

std::unique_ptr<Decoder> make_decoder(const JsonField& config, int depth) {
  if (depth > kMaxDepth) config.fail("decoders nested deeper than " + std::to_string(kMaxDepth));
  const std::string type = config.at("type").as_string();
  if (type == "Sequence") {
    const JsonField list = config.at("decoders");
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < list.array_size(); ++i) steps.push_back(make_decoder(list.at(i), depth + 1));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(parse_pattern(config.at("pattern")), config.at("content").as_string());
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(config.at("content").as_char(), non_negative(config, "start"),
                                          non_negative(config, "stop"));
  }
  if (type == "Metaspace") {
    bool prepends = config.get_string("prepend_scheme", "always") != "never";
    if (const auto legacy = config.find("add_prefix_space"); legacy && !legacy->as_bool()) prepends = false;
    return std::make_unique<MetaspaceDecoder>(config.at("replacement").as_char(), prepends);
  }
  if (type == "BPEDecoder") return std::make_unique<BpeSuffixDecoder>(config.get_string("suffix", "</w>"));
  config.at("type").fail("unsupported decoder type '" + type +
                         "' (supported: ByteLevel, Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace, "
                         "BPEDecoder)");
}

std::string run_decoder(const Decoder* decoder, std::vector<std::string> tokens) {
  std::string text;
  if (decoder == nullptr) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) text += ' ';
      text += tokens[i];
    }
    return text;
  }
  decoder->decode_chain(tokens);
  for (const std::string& token : tokens) text += token;
  return text;
}

}  // namespace hotswap::tok
