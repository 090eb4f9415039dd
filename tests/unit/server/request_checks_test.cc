#include "http/request_checks.h"

#include <gtest/gtest.h>

namespace hotswap::server {
namespace {

HttpRequest request(std::string method, std::string path, std::string content_type) {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  if (!content_type.empty()) r.headers["content-type"] = std::move(content_type);
  return r;
}

TEST(RequestPath, OriginFormLosesOnlyTheQuery) {
  EXPECT_EQ(request_path("/v1/models?x=1"), "/v1/models");
  EXPECT_EQ(request_path("/v1//models"), "/v1//models");
  EXPECT_EQ(request_path("/"), "/");
}

TEST(RequestPath, AbsoluteFormIsAccepted) {  // RFC 9112 §3.2.2
  EXPECT_EQ(request_path("http://host/health"), "/health");
  EXPECT_EQ(request_path("HTTP://host:8080/v1/models?q=2"), "/v1/models");
  EXPECT_EQ(request_path("https://h/a//b"), "/a//b");
  EXPECT_EQ(request_path("http://host"), "/");
  EXPECT_EQ(request_path("http://host?x"), "/");
}

TEST(RequestPath, OtherFormsAreKeptAsTheyAre) {
  EXPECT_EQ(request_path("*"), "*");
  EXPECT_EQ(request_path("host:443"), "host:443");
  EXPECT_EQ(request_path("ftp://host/x"), "ftp://host/x");
}

TEST(TransferCoding, OnlyChunkedIsAccepted) {
  EXPECT_FALSE(check_transfer_coding(""));
  EXPECT_FALSE(check_transfer_coding("chunked"));
  EXPECT_FALSE(check_transfer_coding(" Chunked "));
  for (const char* coding : {"gzip", "gzip, chunked", "deflate", "chunked, gzip", "identity"}) {
    auto error = check_transfer_coding(coding);
    ASSERT_TRUE(error) << coding;
    EXPECT_EQ(error->http_status, 501);
    EXPECT_EQ(error->code, "unsupported_transfer_coding");
    EXPECT_EQ(error->message, std::string("Transfer-Encoding '") + coding +
                                  "' is not implemented: the only transfer coding accepted is 'chunked'");
  }
}

TEST(ContentType, JsonRoutesRequireApplicationJson) {
  EXPECT_FALSE(check_content_type(request("POST", "/v1/completions", "application/json"), BodyClass::kJson));
  EXPECT_FALSE(check_content_type(request("POST", "/v1/completions", "Application/JSON; charset=utf-8"), BodyClass::kJson));
  auto plain = check_content_type(request("POST", "/v1/completions", "text/plain"), BodyClass::kJson);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->http_status, 415);
  EXPECT_EQ(plain->code, "unsupported_media_type");
  EXPECT_EQ(plain->param, "Content-Type");
  EXPECT_EQ(plain->message, "Content-Type must be application/json for POST /v1/completions; got 'text/plain'");
  auto none = check_content_type(request("POST", "/v1/chat/completions", ""), BodyClass::kJson);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->message, "Content-Type must be application/json for POST /v1/chat/completions; no Content-Type was sent");
  EXPECT_TRUE(check_content_type(request("POST", "/v1/completions", "application/jsonx"), BodyClass::kJson));
}

TEST(ContentType, OtherRoutesAndBodylessMethodsAreNotChecked) {
  EXPECT_FALSE(check_content_type(request("GET", "/v1/models", ""), BodyClass::kJson));
  EXPECT_FALSE(check_content_type(request("DELETE", "/v1/adapters/a", ""), BodyClass::kJson));
  EXPECT_FALSE(check_content_type(request("GET", "/health", "text/plain"), BodyClass::kNone));
  EXPECT_FALSE(check_content_type(request("PUT", "/v1/adapters/a", "application/octet-stream"), BodyClass::kUpload));
}

TEST(Secrets, ComparisonIsExact) {
  EXPECT_TRUE(same_secret("Bearer k", "Bearer k"));
  EXPECT_FALSE(same_secret("Bearer k", "Bearer K"));
  EXPECT_FALSE(same_secret("Bearer k", "Bearer kk"));
  EXPECT_FALSE(same_secret("", "x"));
  EXPECT_TRUE(same_secret("", ""));
}

TEST(Secrets, OnlyV1PathsNeedTheKey) {
  HttpRequest r = request("GET", "/v1/models", "");
  EXPECT_TRUE(authorized("", r));
  EXPECT_FALSE(authorized("key", r));
  r.headers["authorization"] = "Bearer key";
  EXPECT_TRUE(authorized("key", r));
  EXPECT_TRUE(authorized("key", request("GET", "/health", "")));
}

}  // namespace
}  // namespace hotswap::server
