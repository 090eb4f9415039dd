#include "http/router.h"

#include <stdexcept>

namespace hotswap::server {
namespace {

bool is_capture(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> segments;
  if (path.empty() || path == "/") return segments;
  std::size_t start = path.front() == '/' ? 1 : 0;
  for (;;) {
    const std::size_t end = path.find('/', start);
    segments.push_back(path.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return segments;
}

void Router::add(const std::string& method, const std::string& pattern, Handler handler, BodyClass body) {
  if (pattern.empty() || pattern.front() != '/') throw std::invalid_argument("route pattern must start with '/': " + pattern);
  for (const Route& r : routes_)
    if (r.method == method && r.pattern == pattern) throw std::invalid_argument("duplicate route " + method + " " + pattern);
  std::vector<std::string> segments = split_path(pattern);
  for (const std::string& s : segments) {
    if (s.empty()) throw std::invalid_argument("empty segment in route pattern " + pattern);
    if (s.find_first_of("{}") != std::string::npos && !is_capture(s))
      throw std::invalid_argument("malformed capture '" + s + "' in " + pattern);
  }
  routes_.push_back({method, pattern, std::move(segments), std::move(handler), body});
}

bool Router::matches(const Route& route, const std::vector<std::string>& segments, RouteParams* params) {
  if (route.segments.size() != segments.size()) return false;
  RouteParams captured;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::string& want = route.segments[i];
    if (is_capture(want) && !segments[i].empty()) captured[want.substr(1, want.size() - 2)] = segments[i];
    else if (want != segments[i]) return false;
  }
  if (params) *params = std::move(captured);
  return true;
}

RouteMatch Router::match(const std::string& method, const std::string& path) const {
  RouteMatch result;
  result.route = "unmatched";
  if (path.empty() || path.front() != '/') return result;  // asterisk- or authority-form: no resource here
  const std::vector<std::string> segments = split_path(path);
  std::string allow;
  for (const Route& r : routes_) {
    RouteParams params;
    if (!matches(r, segments, &params)) continue;
    if (r.method == method) {
      result.outcome = RouteMatch::Outcome::kFound;
      result.handler = &r.handler;
      result.route = r.pattern;
      result.params = std::move(params);
      result.body = r.body;
      return result;
    }
    if (allow.find(r.method) == std::string::npos) allow += (allow.empty() ? "" : ", ") + r.method;
    result.route = r.pattern;
  }
  if (!allow.empty()) {
    result.outcome = RouteMatch::Outcome::kMethodNotAllowed;
    result.allow = allow;
  } else {
    result.route = "unmatched";
  }
  return result;
}

BodyClass Router::body_class(const std::string& path) const {
  const std::vector<std::string> segments = split_path(path);
  BodyClass body = BodyClass::kJson;
  for (const Route& r : routes_) {
    if (!matches(r, segments, nullptr)) continue;
    if (r.body == BodyClass::kUpload) return BodyClass::kUpload;
  }
  return body;
}

}  // namespace hotswap::server
