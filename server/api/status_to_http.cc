#include "api/status_to_http.h"

#include "api/response_codec.h"

namespace hotswap::server {
namespace {

struct Row {
  int http_status;
  const char* type;
  const char* code;
};

Row row_for(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument: return {400, "invalid_request_error", "invalid_request"};
    case StatusCode::kUnauthenticated: return {401, "authentication_error", "invalid_api_key"};
    case StatusCode::kNotFound: return {404, "not_found_error", "not_found"};
    case StatusCode::kConflict: return {409, "conflict_error", "conflict"};
    case StatusCode::kTooLarge: return {413, "invalid_request_error", "payload_too_large"};
    case StatusCode::kResourceExhausted: return {429, "rate_limit_error", "queue_full"};
    case StatusCode::kUnavailable: return {503, "service_unavailable_error", "unavailable"};
    case StatusCode::kInternal: return {500, "server_error", "internal_error"};
    case StatusCode::kOk: break;
  }
  return {500, "server_error", "internal_error"};
}

}  // namespace

int http_status_from_code(StatusCode code) { return row_for(code).http_status; }

ApiError api_error_from_status(const Status& status) {
  const Row row = row_for(status.code());
  std::string message = status.message();
  if (status.is_ok()) message = "internal error: an OK status was reported as a failure";
  return {row.http_status, row.type, row.code, std::move(message), ""};
}

ApiError route_not_found(const std::string& method, const std::string& path) {
  return {404, "not_found_error", "route_not_found", "no route for " + method + " " + path, ""};
}

ApiError method_not_allowed(const std::string& method, const std::string& path, const std::string& allow) {
  return {405, "invalid_request_error", "method_not_allowed",
          "method " + method + " is not allowed on " + path + "; allowed: " + allow, ""};
}

ApiError body_too_large(std::size_t limit_bytes) {
  return {413, "invalid_request_error", "payload_too_large",
          "request body is larger than the limit of " + std::to_string(limit_bytes) + " bytes", ""};
}

ApiError invalid_field(std::string param, std::string message, std::string code) {
  return {400, "invalid_request_error", std::move(code), std::move(message), std::move(param)};
}

HttpResponse error_response(const ApiError& error, int retry_after_s) {
  HttpResponse response;
  response.status = error.http_status;
  response.body = to_json(ErrorBody{error.message, error.type, error.param, error.code});
  if (error.http_status == 429 || error.http_status == 503)
    response.headers.emplace_back("Retry-After", std::to_string(retry_after_s));
  return response;
}

}  // namespace hotswap::server
