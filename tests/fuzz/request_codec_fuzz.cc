// libFuzzer target: the HTTP request bodies of /v1/completions and /v1/chat/completions
// (server/api/json_codec.h). The first byte picks the endpoint; the rest is the body. Any
// bytes: never a crash or an exception; a rejection names a known error code and says why;
// an accepted request respects the configured limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "api/json_codec.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

void check_sampling(const hotswap::v1::SamplingFields& s, const hotswap::server::CodecLimits& limits) {
  require(s.stop_size() <= limits.max_stop);
  for (const std::string& stop : s.stop()) require(static_cast<int>(stop.size()) <= limits.max_stop_bytes);
  if (s.has_n()) require(s.n() >= 1 && s.n() <= limits.max_n);
  if (s.has_max_tokens()) require(s.max_tokens() >= 1);
}

void check_error(const hotswap::server::RequestError& e) {
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
  hotswap::server::CodecLimits limits;
  if (chat) {
    hotswap::v1::ChatCompletionRequest request;
    if (auto error = hotswap::server::parse_chat_request(body, limits, &request)) {
      check_error(*error);
      return 0;
    }
    require(request.messages_size() >= 1 && request.messages_size() <= limits.max_messages);
    check_sampling(request.sampling(), limits);
    return 0;
  }
  hotswap::v1::CompletionRequest request;
  if (auto error = hotswap::server::parse_completion_request(body, limits, &request)) {
    check_error(*error);
    return 0;
  }
  check_sampling(request.sampling(), limits);
  return 0;
}
