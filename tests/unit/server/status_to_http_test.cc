#include "api/status_to_http.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace hotswap::server {
namespace {

using json = nlohmann::json;

std::string header(const HttpResponse& r, const std::string& name) {
  for (const auto& [n, v] : r.headers)
    if (n == name) return v;
  return "";
}

TEST(StatusToHttp, EveryStatusCodeHasItsHttpStatus) {
  EXPECT_EQ(http_status_from_code(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(http_status_from_code(StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(http_status_from_code(StatusCode::kNotFound), 404);
  EXPECT_EQ(http_status_from_code(StatusCode::kConflict), 409);
  EXPECT_EQ(http_status_from_code(StatusCode::kTooLarge), 413);
  EXPECT_EQ(http_status_from_code(StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(http_status_from_code(StatusCode::kUnavailable), 503);
  EXPECT_EQ(http_status_from_code(StatusCode::kInternal), 500);
  EXPECT_EQ(http_status_from_code(StatusCode::kOk), 500) << "an OK status reported as an error is a server fault";
}

TEST(StatusToHttp, ErrorBodyHasTheOpenAiShape) {
  const HttpResponse r = error_response(api_error_from_status(Status::invalid_argument("prompt is too long: 9000 tokens")));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type, "application/json");
  const json body = json::parse(r.body);
  EXPECT_EQ(body["error"]["message"], "prompt is too long: 9000 tokens");
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_EQ(body["error"]["code"], "invalid_request");
  EXPECT_TRUE(body["error"]["param"].is_null());
  EXPECT_EQ(r.body, R"({"error":{"message":"prompt is too long: 9000 tokens","type":"invalid_request_error",)"
                    R"("param":null,"code":"invalid_request"}})")
      << "keys in OpenAI's order";
}

TEST(StatusToHttp, QueueFullAndUnavailableCarryRetryAfter) {
  const HttpResponse full = error_response(api_error_from_status(Status::resource_exhausted("queue full")), 3);
  EXPECT_EQ(full.status, 429);
  EXPECT_EQ(header(full, "Retry-After"), "3");
  EXPECT_EQ(json::parse(full.body)["error"]["code"], "queue_full");
  const HttpResponse draining = error_response(api_error_from_status(Status::unavailable("draining")));
  EXPECT_EQ(draining.status, 503);
  EXPECT_EQ(header(draining, "Retry-After"), "1");
  const HttpResponse bad = error_response(api_error_from_status(Status::invalid_argument("x")));
  EXPECT_EQ(header(bad, "Retry-After"), "");
}

TEST(StatusToHttp, HttpLayerErrors) {
  ApiError nf = route_not_found("GET", "/nope");
  EXPECT_EQ(nf.http_status, 404);
  EXPECT_NE(nf.message.find("GET /nope"), std::string::npos);
  ApiError mna = method_not_allowed("DELETE", "/v1/completions", "POST");
  EXPECT_EQ(mna.http_status, 405);
  EXPECT_NE(mna.message.find("allowed: POST"), std::string::npos);
  ApiError big = body_too_large(1024);
  EXPECT_EQ(big.http_status, 413);
  EXPECT_NE(big.message.find("1024 bytes"), std::string::npos);
  ApiError field = invalid_field("n", "n must be an integer");
  EXPECT_EQ(field.http_status, 400);
  EXPECT_EQ(json::parse(error_response(field).body)["error"]["param"], "n");
}

}  // namespace
}  // namespace hotswap::server
