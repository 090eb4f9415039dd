// PUT/GET/DELETE /v1/adapters/{name} and GET /v1/adapters (specs/api.md "Adapters"): the
// HTTP face of the engine's adapter registry (Engine::put_adapter and friends).
//
//   PUT    body = adapter_weight.json (Content-Type application/json) or a safetensors file
//          (application/octet-stream); without a Content-Type, or with curl's default
//          application/x-www-form-urlencoded, the body's first byte decides ('{' = JSON).
//          201 created / 200 replaced, with the adapter's description; 400 with the codec's
//          message; 401 without the API key (when one is configured); 413 over
//          limits.max_upload_bytes.
//   GET    /v1/adapters -> {"adapters":[description, ...]} sorted by name;
//          /v1/adapters/{name} -> description, 404 if absent.
//   DELETE 200 {"name","object":"adapter","deleted":true}; 404 if absent. Running requests
//          keep the version they pinned.
// A description is the engine's AdapterInfo, written by api/response_codec as
// {"name","object":"adapter","type","layers","parameters","bytes","sha256","created","description","resident"}.
//
// Handlers run on an I/O thread and block it for the upload's parse, validation and fsync
// (the engine loop never waits for them). Stateless; thread-safe.
#pragma once

#include <string>

#include "handlers/handler_context.h"
#include "http/router.h"

namespace hotswap::server {

HttpResponse handle_put_adapter(const HandlerContext& context, const HttpRequest& request, const std::string& name);
HttpResponse handle_get_adapter(const HandlerContext& context, const std::string& name);
HttpResponse handle_delete_adapter(const HandlerContext& context, const HttpRequest& request, const std::string& name);
HttpResponse handle_list_adapters(const HandlerContext& context);

// "%2F" -> "/": route captures arrive percent-encoded. Invalid escapes are kept as they are.
std::string percent_decode(const std::string& segment);

// Adds the four routes (PUT with BodyClass::kUpload, so the session applies the upload body
// limit). `context` must outlive the router.
void register_adapter_routes(Router& router, const HandlerContext* context);

}  // namespace hotswap::server
