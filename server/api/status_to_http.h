// The one table from request outcomes (engine StatusCode, HTTP-layer failures) to HTTP
// statuses and OpenAI-shaped error bodies: {"error":{"message","type","param","code"}}.
#pragma once

#include <string>

#include "engine/status.h"
#include "http/http_types.h"

namespace hotswap::server {

struct ApiError {
  int http_status = 500;
  std::string type;     // OpenAI error type, e.g. "invalid_request_error"
  std::string code;     // short machine-readable code, e.g. "queue_full"
  std::string message;  // specific: names the field or the limit
  std::string param;    // the offending request field, "" if none
};

// Engine/request Status -> ApiError. kOk is a caller bug and maps to 500.
ApiError api_error_from_status(const Status& status);
int http_status_from_code(StatusCode code);

// Failures of the HTTP layer itself (no StatusCode for them).
ApiError route_not_found(const std::string& method, const std::string& path);
ApiError method_not_allowed(const std::string& method, const std::string& path, const std::string& allow);
ApiError body_too_large(std::size_t limit_bytes);
ApiError invalid_field(std::string param, std::string message, std::string code = "invalid_value");

// The response for an ApiError. 429 and 503 carry Retry-After: retry_after_s.
HttpResponse error_response(const ApiError& error, int retry_after_s = 1);

}  // namespace hotswap::server
