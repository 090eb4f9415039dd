// The checks a session makes of a request before any handler sees it, as plain functions
// (no Beast, no sockets) so that each has one home and a unit test: the request path of
// every target form, the transfer coding, the media type of JSON bodies, the API key.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "api/status_to_http.h"
#include "http/http_types.h"
#include "http/router.h"

namespace hotswap::server {

std::string ascii_lower(std::string_view s);

// The path of a request target without its query. Origin-form "/a/b?q" -> "/a/b";
// absolute-form "http://host:8080/a?q" -> "/a" and "http://host" -> "/" (RFC 9112 §3.2.2:
// a server must accept the absolute form). Anything else is returned as it is (and
// matches no route). Empty segments ("//") are kept: they are not the same resource.
std::string request_path(std::string_view target);

// A Transfer-Encoding other than exactly "chunked" is 501 (RFC 9110 §6.1: a transfer
// coding the server does not understand). "" (absent) passes.
std::optional<ApiError> check_transfer_coding(const std::string& transfer_encoding);

// The media type without parameters, lower-cased: "Application/JSON; charset=utf-8" -> "application/json".
std::string media_type(const std::string& content_type);

// Routes that take a JSON body require Content-Type: application/json (parameters such as
// charset allowed) on methods that carry a body; anything else is 415.
std::optional<ApiError> check_content_type(const HttpRequest& request, BodyClass body);

// Constant-time comparison: the time taken does not tell how much of a secret matched.
bool same_secret(std::string_view a, std::string_view b);

// True when no API key is configured, the path is outside /v1/, or the request carries
// "Authorization: Bearer <key>".
bool authorized(const std::string& api_key, const HttpRequest& request);

}  // namespace hotswap::server
