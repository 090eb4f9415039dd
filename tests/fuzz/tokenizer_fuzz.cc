// libFuzzer target: arbitrary bytes through encode, decode and the incremental decoder of
// the repository's tokenizers (the tiny byte-level one, plus llama2/llama3/qwen3 when
// .cache/tokenizers holds them). Aborts when a property that must hold does not:
//   - every id is within vocab_size(); every decoded text is valid UTF-8;
//   - byte-level tokenizers without a normalizer decode their encoding back to the input
//     (with invalid UTF-8 replaced by U+FFFD);
//   - the incremental decoder's pieces add up to decode() when that holds no U+FFFD.
// Input: byte 0 picks the tokenizer (low bits) and add_special_tokens (high bit).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "core/utf8.h"

namespace {

struct FuzzTokenizer {
  std::unique_ptr<hotswap::Tokenizer> tokenizer;
  bool round_trips;  // ByteLevel pre-tokenizer and decoder, no normalizer
};

const std::vector<FuzzTokenizer>& tokenizers() {
  static const std::vector<FuzzTokenizer> list = [] {
    const std::string root = HOTSWAP_SOURCE_DIR;
    std::vector<FuzzTokenizer> out;
    out.push_back({hotswap::Tokenizer::load(root + "/tests/golden/models/llama_f32/tokenizer.json"), true});
    for (const char* name : {"llama2", "llama3", "qwen3"}) {
      const std::string dir = root + "/.cache/tokenizers/" + name;
      if (std::filesystem::exists(dir + "/tokenizer.json")) {
        out.push_back({hotswap::Tokenizer::load(dir), std::string(name) == "llama3"});
      }
    }
    return out;
  }();
  return list;
}

void require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "tokenizer_fuzz: property violated: %s\n", what);
  std::abort();
}

bool has_replacement(const std::string& text) { return text.find("\xEF\xBF\xBD") != std::string::npos; }

void check_stream(const hotswap::Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special) {
  const std::string decoded = tok.decode(ids, skip_special);
  require(hotswap::is_valid_utf8(decoded), "decode() returned invalid UTF-8");
  hotswap::IncrementalDecoder stream(tok, skip_special);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string piece = stream.push(id);
    require(hotswap::is_valid_utf8(piece), "push() returned invalid UTF-8");
    streamed += piece;
  }
  streamed += stream.flush();
  if (!has_replacement(decoded)) require(streamed == decoded, "streamed text differs from decode()");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const FuzzTokenizer& entry = tokenizers()[(data[0] & 0x7F) % tokenizers().size()];
  const hotswap::Tokenizer& tok = *entry.tokenizer;
  const bool add_special = (data[0] & 0x80) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  const std::vector<int32_t> ids = tok.encode(text, add_special);
  for (int32_t id : ids) require(id >= 0 && id < tok.vocab_size(), "encode() produced an id out of range");
  if (entry.round_trips && !add_special) {
    require(tok.decode(ids, false) == hotswap::to_valid_utf8(text), "decode(encode(text)) != text");
  }
  check_stream(tok, ids, false);
  check_stream(tok, ids, true);

  // The same bytes read as arbitrary ids: decoding never fails, streaming stays consistent.
  std::vector<int32_t> raw_ids;
  for (size_t i = 1; i + 1 < size; i += 2) raw_ids.push_back(static_cast<int32_t>((data[i] << 8 | data[i + 1]) * 3));
  check_stream(tok, raw_ids, (data[0] & 1) != 0);
  return 0;
}
