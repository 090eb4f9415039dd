// Server-sent events framing for streamed generation (text/event-stream): one
// "data: <json>\n\n" event per chunk, and the "data: [DONE]\n\n" terminator.
#pragma once

#include <string>
#include <string_view>

namespace hotswap::server {

// One event carrying `payload`. A payload with line breaks is split over several "data:"
// lines, as the SSE format requires (JSON from the response codec, api/response_codec.h, has none).
std::string sse_event(std::string_view payload);
std::string sse_done();
// A comment line clients ignore; keeps idle connections and proxies alive.
std::string sse_heartbeat();

}  // namespace hotswap::server
