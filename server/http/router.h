// (method, path) -> handler. Paths are literal segments or {param} captures, so that
// "/v1/adapters/{name}" slots in beside "/v1/adapters"; a capture never matches an empty
// segment. Unknown paths are 404 and known paths
// with another method are 405 with the Allow list, decided here and nowhere else.
// Built once at start-up, then read-only: match() is safe from any thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "http/http_types.h"

namespace hotswap::server {

using RouteParams = std::map<std::string, std::string>;
using HandlerResult = std::variant<HttpResponse, std::shared_ptr<AsyncResponse>>;
using Handler = std::function<HandlerResult(const HttpRequest&, const RouteParams&)>;

// Per-route properties the session needs before the body is read.
enum class BodyClass { kNone, kJson, kUpload };

struct RouteMatch {
  enum class Outcome { kFound, kNotFound, kMethodNotAllowed };
  Outcome outcome = Outcome::kNotFound;
  const Handler* handler = nullptr;  // kFound only
  std::string route;                 // the pattern, e.g. "/v1/adapters/{name}"; "unmatched" otherwise
  RouteParams params;
  std::string allow;                 // kMethodNotAllowed: "GET, POST"
  BodyClass body = BodyClass::kJson;
};

class Router {
 public:
  // Throws std::invalid_argument for a malformed pattern or a duplicate (method, pattern).
  void add(const std::string& method, const std::string& pattern, Handler handler, BodyClass body = BodyClass::kJson);

  RouteMatch match(const std::string& method, const std::string& path) const;

  // The body limit class of a path (any method), for setting the parser's limit.
  BodyClass body_class(const std::string& path) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;  // "{name}" captures
    Handler handler;
    BodyClass body;
  };
  static bool matches(const Route& route, const std::vector<std::string>& segments, RouteParams* params);

  std::vector<Route> routes_;
};

// "/a/b" -> {"a","b"}; "" and "/" -> {}. Empty segments are kept, so "//a" and "/a/" name
// other resources than "/a" and match no route of it (nothing is silently collapsed).
std::vector<std::string> split_path(const std::string& path);

}  // namespace hotswap::server
