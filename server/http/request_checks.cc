#include "http/request_checks.h"

#include <algorithm>
#include <cctype>

namespace hotswap::server {

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string request_path(std::string_view target) {
  target = target.substr(0, target.find('?'));
  const std::string lowered = ascii_lower(target.substr(0, 8));
  std::size_t scheme = 0;
  if (lowered.rfind("http://", 0) == 0) scheme = 7;
  else if (lowered.rfind("https://", 0) == 0) scheme = 8;
  if (scheme == 0) return std::string(target);
  const std::size_t path = target.find('/', scheme);
  return path == std::string_view::npos ? "/" : std::string(target.substr(path));
}

std::optional<ApiError> check_transfer_coding(const std::string& transfer_encoding) {
  if (transfer_encoding.empty() || media_type(transfer_encoding) == "chunked") return std::nullopt;
  return ApiError{501, "invalid_request_error", "unsupported_transfer_coding",
                  "Transfer-Encoding '" + transfer_encoding.substr(0, 80) +
                      "' is not implemented: the only transfer coding accepted is 'chunked'",
                  "Transfer-Encoding"};
}

std::string media_type(const std::string& content_type) {
  std::string t = content_type.substr(0, content_type.find(';'));
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  t.erase(t.begin(), std::find_if(t.begin(), t.end(), not_space));
  t.erase(std::find_if(t.rbegin(), t.rend(), not_space).base(), t.end());
  return ascii_lower(t);
}

std::optional<ApiError> check_content_type(const HttpRequest& request, BodyClass body) {
  if (body != BodyClass::kJson) return std::nullopt;
  if (request.method != "POST" && request.method != "PUT" && request.method != "PATCH") return std::nullopt;
  const std::string& sent = request.header("content-type");
  if (media_type(sent) == "application/json") return std::nullopt;
  const std::string got = sent.empty() ? "no Content-Type was sent" : "got '" + sent.substr(0, 80) + "'";
  return ApiError{415, "invalid_request_error", "unsupported_media_type",
                  "Content-Type must be application/json for " + request.method + " " + request.path + "; " + got,
                  "Content-Type"};
}

bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

bool authorized(const std::string& api_key, const HttpRequest& request) {
  if (api_key.empty() || request.path.rfind("/v1/", 0) != 0) return true;
  return same_secret(request.header("authorization"), "Bearer " + api_key);
}

}  // namespace hotswap::server
