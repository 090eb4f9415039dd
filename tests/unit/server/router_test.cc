#include "http/router.h"

#include <gtest/gtest.h>

namespace hotswap::server {
namespace {

Handler answering(int status) {
  return [status](const HttpRequest&, const RouteParams&) -> HandlerResult {
    HttpResponse r;
    r.status = status;
    return r;
  };
}

int call(const RouteMatch& m) {
  HttpRequest request;
  HandlerResult result = (*m.handler)(request, m.params);
  return std::get<HttpResponse>(result).status;
}

Router sample_router() {
  Router r;
  r.add("GET", "/health", answering(200), BodyClass::kNone);
  r.add("POST", "/v1/completions", answering(201));
  r.add("GET", "/v1/adapters", answering(202), BodyClass::kNone);
  r.add("GET", "/v1/adapters/{name}", answering(203), BodyClass::kNone);
  r.add("PUT", "/v1/adapters/{name}", answering(204), BodyClass::kUpload);
  r.add("DELETE", "/v1/adapters/{name}", answering(205), BodyClass::kNone);
  return r;
}

TEST(Router, FindsTheHandlerForMethodAndPath) {
  const Router r = sample_router();
  RouteMatch m = r.match("POST", "/v1/completions");
  ASSERT_EQ(m.outcome, RouteMatch::Outcome::kFound);
  EXPECT_EQ(m.route, "/v1/completions");
  EXPECT_EQ(call(m), 201);
  EXPECT_EQ(call(r.match("GET", "/health")), 200);
}

TEST(Router, CapturesPathParameters) {
  const Router r = sample_router();
  RouteMatch m = r.match("PUT", "/v1/adapters/my-adapter.v2");
  ASSERT_EQ(m.outcome, RouteMatch::Outcome::kFound);
  EXPECT_EQ(m.params.at("name"), "my-adapter.v2");
  EXPECT_EQ(m.route, "/v1/adapters/{name}");
  EXPECT_EQ(m.body, BodyClass::kUpload);
  EXPECT_EQ(call(m), 204);
  EXPECT_EQ(call(r.match("GET", "/v1/adapters")), 202);
}

TEST(Router, UnknownPathIsNotFound) {
  const Router r = sample_router();
  RouteMatch m = r.match("GET", "/v2/completions");
  EXPECT_EQ(m.outcome, RouteMatch::Outcome::kNotFound);
  EXPECT_EQ(m.route, "unmatched");
  EXPECT_EQ(r.match("GET", "/v1/adapters/a/b").outcome, RouteMatch::Outcome::kNotFound);
}

TEST(Router, WrongMethodIsNotAllowedWithTheAllowList) {
  const Router r = sample_router();
  RouteMatch m = r.match("GET", "/v1/completions");
  EXPECT_EQ(m.outcome, RouteMatch::Outcome::kMethodNotAllowed);
  EXPECT_EQ(m.allow, "POST");
  EXPECT_EQ(m.route, "/v1/completions");
  RouteMatch adapters = r.match("POST", "/v1/adapters/x");
  EXPECT_EQ(adapters.outcome, RouteMatch::Outcome::kMethodNotAllowed);
  EXPECT_EQ(adapters.allow, "GET, PUT, DELETE");
}

// "//" and a trailing "/" name other resources (RFC 3986 keeps empty segments): nothing
// is silently collapsed, and an empty segment never fills a capture.
TEST(Router, EmptySegmentsAreNotCollapsed) {
  const Router r = sample_router();
  EXPECT_EQ(r.match("GET", "/health/").outcome, RouteMatch::Outcome::kNotFound);
  EXPECT_EQ(r.match("POST", "//v1//completions").outcome, RouteMatch::Outcome::kNotFound);
  EXPECT_EQ(r.match("POST", "/v1//completions").outcome, RouteMatch::Outcome::kNotFound);
  EXPECT_EQ(r.match("GET", "/v1/adapters/").outcome, RouteMatch::Outcome::kNotFound);
  EXPECT_EQ(r.match("GET", "/v1/adapters//x").outcome, RouteMatch::Outcome::kNotFound);
  EXPECT_EQ(r.match("POST", "/v1/completions").outcome, RouteMatch::Outcome::kFound);
}

TEST(Router, TargetsThatAreNotPathsMatchNothing) {
  const Router r = sample_router();
  EXPECT_EQ(r.match("OPTIONS", "*").outcome, RouteMatch::Outcome::kNotFound);
  EXPECT_EQ(r.match("GET", "health").outcome, RouteMatch::Outcome::kNotFound);
  EXPECT_EQ(r.match("GET", "").outcome, RouteMatch::Outcome::kNotFound);
}

TEST(Router, BodyClassPicksTheUploadLimitForAdapterPaths) {
  const Router r = sample_router();
  EXPECT_EQ(r.body_class("/v1/adapters/x"), BodyClass::kUpload);
  EXPECT_EQ(r.body_class("/v1/completions"), BodyClass::kJson);
  EXPECT_EQ(r.body_class("/nowhere"), BodyClass::kJson);
}

TEST(Router, RejectsDuplicateAndMalformedRoutes) {
  Router r = sample_router();
  EXPECT_THROW(r.add("GET", "/health", answering(200)), std::invalid_argument);
  EXPECT_THROW(r.add("GET", "no-slash", answering(200)), std::invalid_argument);
  EXPECT_THROW(r.add("GET", "/a/{b", answering(200)), std::invalid_argument);
  EXPECT_THROW(r.add("GET", "/a//b", answering(200)), std::invalid_argument);
}

TEST(Router, SplitPath) {
  EXPECT_EQ(split_path("/"), std::vector<std::string>{});
  EXPECT_EQ(split_path(""), std::vector<std::string>{});
  EXPECT_EQ(split_path("/a/b"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(split_path("/a/b/"), (std::vector<std::string>{"a", "b", ""}));
  EXPECT_EQ(split_path("//a"), (std::vector<std::string>{"", "a"}));
}

}  // namespace
}  // namespace hotswap::server
