#include "handlers/adapter_handlers.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <utility>
#include <variant>

#include "api/response_codec.h"
#include "api/status_to_http.h"
#include "http/request_checks.h"

namespace hotswap::server {
namespace {

HttpResponse json_response(int status, std::string body) { return {status, "application/json", std::move(body), {}, {}}; }

HttpResponse status_response(const HandlerContext& context, const Status& status) {
  return error_response(api_error_from_status(status), context.config->retry_after_s);
}

Engine* ready_engine(const HandlerContext& context) { return context.state->engine(); }

HttpResponse engine_loading(const HandlerContext& context) {
  return status_response(context, Status::unavailable("the model is still loading"));
}

// The session already refuses unauthenticated /v1 requests; checking again here keeps the
// mutation endpoints closed whoever calls these handlers.
std::optional<HttpResponse> refuse_unauthenticated(const HandlerContext& context, const HttpRequest& request) {
  const std::string& key = context.config->api_key;
  if (key.empty() || same_secret(request.header("authorization"), "Bearer " + key)) return std::nullopt;
  return status_response(
      context, Status(StatusCode::kUnauthenticated, "missing or wrong API key: send the header 'Authorization: Bearer <key>'"));
}

std::variant<AdapterEncoding, HttpResponse> upload_encoding(const HttpRequest& request) {
  const std::string type = media_type(request.header("content-type"));
  if (type == "application/json") return AdapterEncoding::kJson;
  if (type == "application/octet-stream") return AdapterEncoding::kSafetensors;
  if (type.empty() || type == "application/x-www-form-urlencoded") {
    // No real type given (curl --data-binary sends form-urlencoded): a JSON document starts
    // with '{' after optional whitespace, a safetensors file with its binary header length.
    const auto first = std::find_if(request.body.begin(), request.body.end(),
                                    [](unsigned char c) { return !std::isspace(c); });
    return first != request.body.end() && *first == '{' ? AdapterEncoding::kJson : AdapterEncoding::kSafetensors;
  }
  return error_response(invalid_field("Content-Type",
                                      "unsupported Content-Type '" + type.substr(0, 80) +
                                          "' for an adapter upload; expected application/json (adapter_weight.json) "
                                          "or application/octet-stream (safetensors)",
                                      "unsupported_media_type"));
}

}  // namespace

std::string percent_decode(const std::string& segment) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(segment.size());
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] == '%' && i + 2 < segment.size() && hex(segment[i + 1]) >= 0 && hex(segment[i + 2]) >= 0) {
      out += static_cast<char>(hex(segment[i + 1]) * 16 + hex(segment[i + 2]));
      i += 2;
    } else {
      out += segment[i];
    }
  }
  return out;
}

HttpResponse handle_put_adapter(const HandlerContext& context, const HttpRequest& request, const std::string& name) {
  if (auto refused = refuse_unauthenticated(context, request)) return std::move(*refused);
  if (request.body.size() > context.config->limits.max_upload_bytes) {
    return error_response(body_too_large(context.config->limits.max_upload_bytes));
  }
  Engine* engine = ready_engine(context);
  if (!engine) return engine_loading(context);
  auto encoding = upload_encoding(request);
  if (auto* refused = std::get_if<HttpResponse>(&encoding)) return std::move(*refused);
  if (request.body.empty()) {
    return error_response(invalid_field("body", "the adapter upload is empty; expected an adapter_weight.json "
                                                "document or a safetensors file"));
  }
  Result<AdapterPutResult> put = engine->put_adapter(name, request.body, std::get<AdapterEncoding>(encoding));
  if (!put) {
    if (put.status().code() == StatusCode::kInternal) {
      spdlog::error("event=adapter_put_failed id={} name={} error=\"{}\"", request.request_id, name,
                    put.status().message());
    }
    return status_response(context, put.status());
  }
  return json_response(put->created ? 201 : 200, to_json(put->info));
}

HttpResponse handle_get_adapter(const HandlerContext& context, const std::string& name) {
  Engine* engine = ready_engine(context);
  if (!engine) return engine_loading(context);
  Result<AdapterInfo> info = engine->get_adapter(name);
  if (!info) return status_response(context, info.status());
  return json_response(200, to_json(info.value()));
}

HttpResponse handle_delete_adapter(const HandlerContext& context, const HttpRequest& request, const std::string& name) {
  if (auto refused = refuse_unauthenticated(context, request)) return std::move(*refused);
  Engine* engine = ready_engine(context);
  if (!engine) return engine_loading(context);
  if (Status s = engine->delete_adapter(name); !s) return status_response(context, s);
  return json_response(200, to_json(AdapterDeleted{name}));
}

HttpResponse handle_list_adapters(const HandlerContext& context) {
  Engine* engine = ready_engine(context);
  if (!engine) return engine_loading(context);
  return json_response(200, to_json(AdapterList{engine->list_adapters()}));
}

void register_adapter_routes(Router& router, const HandlerContext* context) {
  router.add("GET", "/v1/adapters",
             [context](const HttpRequest&, const RouteParams&) -> HandlerResult { return handle_list_adapters(*context); },
             BodyClass::kNone);
  router.add(
      "PUT", "/v1/adapters/{name}",
      [context](const HttpRequest& request, const RouteParams& params) -> HandlerResult {
        return handle_put_adapter(*context, request, percent_decode(params.at("name")));
      },
      BodyClass::kUpload);
  router.add(
      "GET", "/v1/adapters/{name}",
      [context](const HttpRequest&, const RouteParams& params) -> HandlerResult {
        return handle_get_adapter(*context, percent_decode(params.at("name")));
      },
      BodyClass::kNone);
  router.add(
      "DELETE", "/v1/adapters/{name}",
      [context](const HttpRequest& request, const RouteParams& params) -> HandlerResult {
        return handle_delete_adapter(*context, request, percent_decode(params.at("name")));
      },
      BodyClass::kNone);
}

}  // namespace hotswap::server
