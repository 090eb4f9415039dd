// libFuzzer target: arbitrary bytes as tokenizer.json (and, after the first NUL byte, as
// tokenizer_config.json). Loading must either succeed or throw hotswap::LoadError; any other
// exception or a crash is a bug. A tokenizer that loads is exercised on a fixed text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/load_error.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string json = input.substr(0, nul);
  const std::string config = nul == std::string::npos ? std::string() : input.substr(nul + 1);
  std::unique_ptr<hotswap::Tokenizer> tok;
  try {
    tok = hotswap::Tokenizer::from_json(json, config);
  } catch (const hotswap::LoadError&) {
    return 0;
  }
  const std::vector<int32_t> ids = tok->encode("Hello, w\xC3\xB6rld 123 <s> \xF0\x9F\x98\x80\n\tend", true);
  tok->decode(ids, false);
  tok->decode(ids, true);
  hotswap::IncrementalDecoder stream(*tok);
  for (int32_t id : ids) stream.push(id);
  stream.flush();
  for (int32_t id = -1; id < 8; ++id) {
    tok->id_to_token(id);
    tok->is_special(id);
  }
  tok->token_to_id("<s>");
  return 0;
}
