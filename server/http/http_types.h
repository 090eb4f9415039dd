// What handlers see of HTTP: plain request/response values and the AsyncResponse interface
// for responses produced over time (generation). No Beast here: only http_session.cc and
// listener.cc include Boost.Beast, so handlers compile fast and test without sockets.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hotswap::server {

struct HttpRequest {
  std::string request_id;  // made by the session; echoed as x-request-id and in the access log
  std::string method;      // "GET", "POST", ...
  std::string target;      // path and query as received
  std::string path;        // target without the query
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  // "" when absent.
  const std::string& header(const std::string& lower_name) const {
    static const std::string kEmpty;
    auto it = headers.find(lower_name);
    return it == headers.end() ? kEmpty : it->second;
  }
};

// Token counts a handler reports for the access log and metrics.
struct AccessInfo {
  int prompt_tokens = 0;
  int completion_tokens = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  AccessInfo access;
};

// What an AsyncResponse has ready when the session polls it. Either nothing yet, a whole
// response (which ends the exchange), or streamed bytes: `stream_head` once (status and
// headers; its body is ignored), then body bytes, then `stream_end`.
struct ResponseProgress {
  std::optional<HttpResponse> full;
  std::optional<HttpResponse> stream_head;
  std::string stream_bytes;
  bool stream_end = false;
};

// A response produced over time. Threading: start(), poll() and cancel() run on the
// owning session's strand only; the wake callback given to start() may be called from any
// thread (the engine thread) and only schedules a poll, never runs response code.
class AsyncResponse {
 public:
  using Wake = std::function<void()>;
  virtual ~AsyncResponse() = default;

  virtual void start(Wake wake) = 0;
  // Everything ready now; called again after each wake once the previous write finished.
  virtual ResponseProgress poll() = 0;
  // The client went away or the session is closing: stop the work behind the response.
  virtual void cancel() = 0;
  // Final counts for the access log; valid once poll() has returned the end.
  virtual AccessInfo access_info() const = 0;
};

}  // namespace hotswap::server
