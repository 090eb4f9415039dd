// libFuzzer target: the HTTP request bodies of /v1/completions and /v1/chat/completions
// (server/api/request_codec.h). The first byte picks the endpoint; the rest is the body. Any
// bytes: never a crash or an exception; a rejection names a known error code and says why;
// an accepted request respects the configured limits and the engine's field table.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "api/request_codec.h"

namespace {

using namespace hotswap;
using namespace hotswap::server;

void require(bool ok) {
  if (!ok) std::abort();
}

// Stands in for the engine's parse_attention_choice(): this target exercises the codec only.
bool accept_attention(const std::string& text, AttentionChoice* out, std::string*) {
  out->params = text;
  return true;
}

void check_fields(const GenerationFields& g, const CodecLimits& limits) {
  require(static_cast<int>(g.stop.stop_strings.size()) <= limits.max_stop);
  for (const std::string& stop : g.stop.stop_strings) require(static_cast<int>(stop.size()) <= limits.max_stop_bytes);
  require(g.n >= 1 && g.n <= limits.max_n);
  require(g.stop.max_tokens >= 0 && g.stop.max_tokens <= limits.max_tokens);  // 0: see below
  using namespace request_fields;
  require(kTemperature.contains(g.sampling.temperature) && kTopP.contains(g.sampling.top_p) &&
          kTopK.contains(g.sampling.top_k) && kMinP.contains(g.sampling.min_p) &&
          kRepetitionPenalty.contains(g.sampling.repetition_penalty) &&
          kPresencePenalty.contains(g.sampling.presence_penalty) && kFrequencyPenalty.contains(g.sampling.frequency_penalty));
}

void check_error(const RequestError& e) {
  static const std::set<std::string> kCodes = {"invalid_json", "invalid_utf8", "invalid_type", "invalid_value",
                                               "missing_field", "unsupported_field"};
  require(!e.message.empty());
  require(kCodes.count(e.code) == 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool chat = data[0] % 2 == 1;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  CodecOptions options;
  options.parse_attention = accept_attention;
  if (chat) {
    ChatRequest request;
    if (auto error = parse_chat_request(body, options, &request)) {
      check_error(*error);
      return 0;
    }
    require(!request.messages.empty() && static_cast<int>(request.messages.size()) <= options.limits.max_messages);
    check_fields(request.fields, options.limits);
    require(request.fields.stop.max_tokens >= 1);
    return 0;
  }
  CompletionRequest request;
  if (auto error = parse_completion_request(body, options, &request)) {
    check_error(*error);
    return 0;
  }
  require(!request.prompts.empty());
  check_fields(request.fields, options.limits);
  // max_tokens 0 only scores an echoed prompt.
  require(request.fields.stop.max_tokens >= 1 || (request.echo && request.logprobs >= 0));
  return 0;
}
