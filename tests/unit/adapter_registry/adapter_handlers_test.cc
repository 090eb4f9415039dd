#include "handlers/adapter_handlers.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "adapters/adapter_registry.h"
#include "adapters/sha256.h"
#include "test_adapters.h"

namespace hotswap::server {
namespace {

using hotswap::testing::mixed_doc;
using hotswap::testing::TempDir;
using Json = nlohmann::json;

// The engine as the adapter handlers see it: its adapter calls go to a real AdapterRegistry
// on a temporary directory (what engine.cc delegates to); generation is not part of these
// tests, so those calls refuse.
class RegistryEngine : public Engine {
 public:
  explicit RegistryEngine(const std::string& dir) : registry_(hotswap::testing::test_shape(), "", dir, 1 << 30) {}

  Result<std::shared_ptr<TokenStream>> submit(GenerateRequest) override {
    return Status::unavailable("generation is not part of the adapter handler tests");
  }
  void drain() override {}
  bool wait_idle(int) override { return true; }
  EngineStats stats() const override { return {}; }
  Result<AdapterPutResult> put_adapter(const std::string& name, std::string_view body,
                                       AdapterEncoding encoding) override {
    return registry_.put(name, body, encoding);
  }
  Result<AdapterInfo> get_adapter(const std::string& name) const override { return registry_.get(name); }
  std::vector<AdapterInfo> list_adapters() const override { return registry_.list(); }
  Status delete_adapter(const std::string& name) override { return registry_.remove(name); }
  AdapterStats adapter_stats() const override { return registry_.stats(); }
  const ModelInfo& model_info() const override { return info_; }
  std::vector<int32_t> encode(const std::string&, bool) const override { return {}; }
  std::string decode(const std::vector<int32_t>&, bool) const override { return {}; }
  Result<std::string> render_chat(const std::vector<ChatMessage>&, bool) const override {
    return Status::invalid_argument("no chat template");
  }

 private:
  AdapterRegistry registry_;
  ModelInfo info_;
};

class AdapterHandlers : public ::testing::Test {
 protected:
  AdapterHandlers() : engine_(dir_.path()) {
    state_.set_engine(&engine_);
    state_.set_phase(Phase::kReady);
    context_.config = &config_;
    context_.state = &state_;
    router_ = std::make_unique<Router>();
    register_adapter_routes(*router_, &context_);
  }

  // Through the router, like the session does.
  HttpResponse call(const std::string& method, const std::string& path, std::string body = "",
                    std::map<std::string, std::string> headers = {}) {
    HttpRequest request;
    request.request_id = "test";
    request.method = method;
    request.path = request.target = path;
    request.body = std::move(body);
    request.headers = std::move(headers);
    const RouteMatch match = router_->match(method, path);
    EXPECT_EQ(match.outcome, RouteMatch::Outcome::kFound) << method << " " << path;
    if (match.outcome != RouteMatch::Outcome::kFound) return {};
    HandlerResult result = (*match.handler)(request, match.params);
    return std::get<HttpResponse>(std::move(result));
  }
  HttpResponse put_json(const std::string& name, const std::string& body,
                        std::map<std::string, std::string> headers = {{"content-type", "application/json"}}) {
    return call("PUT", "/v1/adapters/" + name, body, std::move(headers));
  }
  static Json body(const HttpResponse& r) { return Json::parse(r.body); }
  static std::string error_message(const HttpResponse& r) { return body(r)["error"]["message"].get<std::string>(); }

  TempDir dir_;
  ServerConfig config_;
  ServerState state_;
  RegistryEngine engine_;
  HandlerContext context_;
  std::unique_ptr<Router> router_;
};

TEST_F(AdapterHandlers, PutCreatesThenReplacesAndDescribesTheAdapter) {
  const std::string doc = mixed_doc(1);
  HttpResponse created = put_json("my-adapter", doc);
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.content_type, "application/json");
  const Json d = body(created);
  EXPECT_EQ(d["name"], "my-adapter");
  EXPECT_EQ(d["type"], "mixed");
  EXPECT_EQ(d["layers"], 4);
  EXPECT_EQ(d["bytes"], doc.size());
  EXPECT_EQ(d["sha256"], sha256_hex(doc));
  EXPECT_TRUE(d["parameters"].is_object());
  EXPECT_EQ(d["parameters"]["block_size"], 4);
  EXPECT_TRUE(d["created"].is_number_integer());

  HttpResponse replaced = put_json("my-adapter", mixed_doc(2));
  ASSERT_EQ(replaced.status, 200) << replaced.body;
  EXPECT_EQ(body(replaced)["sha256"], sha256_hex(mixed_doc(2)));
}

TEST_F(AdapterHandlers, ListGetAndDelete) {
  ASSERT_EQ(put_json("b", mixed_doc(1)).status, 201);
  ASSERT_EQ(put_json("a", mixed_doc(2)).status, 201);
  HttpResponse list = call("GET", "/v1/adapters");
  ASSERT_EQ(list.status, 200);
  const Json l = body(list);
  ASSERT_EQ(l["adapters"].size(), 2u);
  EXPECT_EQ(l["adapters"][0]["name"], "a");
  EXPECT_EQ(l["adapters"][1]["name"], "b");
  for (const char* key : {"name", "type", "layers", "parameters", "bytes", "sha256", "created"}) {
    EXPECT_TRUE(l["adapters"][0].contains(key)) << key;
  }

  HttpResponse got = call("GET", "/v1/adapters/b");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(body(got)["sha256"], sha256_hex(mixed_doc(1)));

  HttpResponse deleted = call("DELETE", "/v1/adapters/b");
  ASSERT_EQ(deleted.status, 200);
  EXPECT_EQ(body(deleted)["deleted"], true);
  HttpResponse gone = call("GET", "/v1/adapters/b");
  EXPECT_EQ(gone.status, 404);
  EXPECT_NE(error_message(gone).find("'b'"), std::string::npos);
  EXPECT_EQ(call("DELETE", "/v1/adapters/b").status, 404);
  EXPECT_EQ(body(call("GET", "/v1/adapters"))["adapters"].size(), 1u);
}

TEST_F(AdapterHandlers, BadDocumentsAndNamesAre400WithTheSpecificMessage) {
  nlohmann::ordered_json bad = nlohmann::ordered_json::parse(mixed_doc(1));
  bad["adapter_weight_dict"]["model.layers.2.self_attn.adapter.weight"] = {0.5, 1.5};
  HttpResponse r = put_json("x", bad.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_message(r).find("'model.layers.2.self_attn.adapter.weight' (layer 2): element 1 must lie in [0, 1], got 1.5"),
            std::string::npos)
      << r.body;

  // Route captures arrive percent-encoded; the decoded name is what gets judged.
  r = put_json("..%2Fetc", mixed_doc(1));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_message(r).find("path separator '/'"), std::string::npos) << r.body;
  r = put_json("x%0A", mixed_doc(1));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_message(r).find("control character 0x0a"), std::string::npos) << r.body;
  r = put_json(std::string(65, 'n'), mixed_doc(1));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(call("GET", "/v1/adapters/..%2F..%2Fetc%2Fpasswd").status, 400);

  r = put_json("x", "", {{"content-type", "application/json"}});
  EXPECT_EQ(r.status, 400);
  r = put_json("x", mixed_doc(1), {{"content-type", "text/plain"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_message(r).find("unsupported Content-Type 'text/plain'"), std::string::npos);
  r = put_json("x", std::string("\x10\0\0\0\0\0\0\0{garbage", 17), {{"content-type", "application/octet-stream"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_message(r).find("safetensors"), std::string::npos) << r.body;

  EXPECT_EQ(body(call("GET", "/v1/adapters"))["adapters"].size(), 0u);
}

TEST_F(AdapterHandlers, ContentTypeSelectsTheEncodingAndAbsentTypeIsSniffed) {
  EXPECT_EQ(put_json("j1", mixed_doc(1), {{"content-type", "Application/JSON; charset=utf-8"}}).status, 201);
  EXPECT_EQ(put_json("j2", mixed_doc(1), {}).status, 201);
  EXPECT_EQ(put_json("j3", mixed_doc(1), {{"content-type", "application/x-www-form-urlencoded"}}).status, 201);
  HttpResponse st = put_json("n1", hotswap::testing::nsa_safetensors_doc(1), {{"content-type", "application/octet-stream"}});
  ASSERT_EQ(st.status, 201) << st.body;
  EXPECT_EQ(body(st)["type"], "nsa");
  EXPECT_TRUE(std::filesystem::exists(dir_.file("n1.safetensors")));
  EXPECT_EQ(put_json("n2", hotswap::testing::nsa_safetensors_doc(1), {}).status, 201);
}

TEST_F(AdapterHandlers, MutationsNeedTheApiKeyWhenOneIsConfigured) {
  config_.api_key = "sekret";
  EXPECT_EQ(put_json("a", mixed_doc(1)).status, 401);
  EXPECT_EQ(put_json("a", mixed_doc(1), {{"content-type", "application/json"}, {"authorization", "Bearer wrong"}}).status,
            401);
  EXPECT_EQ(put_json("a", mixed_doc(1), {{"content-type", "application/json"}, {"authorization", "sekret"}}).status,
            401);
  EXPECT_EQ(body(call("GET", "/v1/adapters"))["adapters"].size(), 0u);
  EXPECT_EQ(put_json("a", mixed_doc(1), {{"content-type", "application/json"}, {"authorization", "Bearer sekret"}}).status,
            201);
  EXPECT_EQ(call("DELETE", "/v1/adapters/a").status, 401);
  EXPECT_EQ(call("DELETE", "/v1/adapters/a", "", {{"authorization", "Bearer sekret"}}).status, 200);
}

TEST_F(AdapterHandlers, UploadOverTheLimitIs413AndChangesNothing) {
  config_.limits.max_upload_bytes = 64;
  HttpResponse r = put_json("a", mixed_doc(1));
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(error_message(r).find("64 bytes"), std::string::npos);
  EXPECT_EQ(body(call("GET", "/v1/adapters"))["adapters"].size(), 0u);
}

TEST_F(AdapterHandlers, RoutesAreRegisteredWithTheUploadBodyClass) {
  EXPECT_EQ(router_->match("PUT", "/v1/adapters/x").body, BodyClass::kUpload);
  EXPECT_EQ(router_->body_class("/v1/adapters/x"), BodyClass::kUpload);
  EXPECT_EQ(router_->match("GET", "/v1/adapters").body, BodyClass::kNone);
  const RouteMatch post = router_->match("POST", "/v1/adapters/x");
  EXPECT_EQ(post.outcome, RouteMatch::Outcome::kMethodNotAllowed);
  EXPECT_NE(post.allow.find("PUT"), std::string::npos);
  EXPECT_NE(post.allow.find("DELETE"), std::string::npos);
}

TEST_F(AdapterHandlers, WhileTheModelLoadsTheyAnswer503) {
  state_.set_engine(nullptr);
  EXPECT_EQ(call("GET", "/v1/adapters").status, 503);
  EXPECT_EQ(put_json("a", mixed_doc(1)).status, 503);
}

TEST(PercentDecode, DecodesEscapesAndKeepsInvalidOnes) {
  EXPECT_EQ(percent_decode("a%2Fb"), "a/b");
  EXPECT_EQ(percent_decode("%2e%2E"), "..");
  EXPECT_EQ(percent_decode("x%0a"), "x\n");
  EXPECT_EQ(percent_decode("100%"), "100%");
  EXPECT_EQ(percent_decode("%zz%4"), "%zz%4");
  EXPECT_EQ(percent_decode("plain-name.v1"), "plain-name.v1");
}

}  // namespace
}  // namespace hotswap::server
