#include "routes.h"

#include "handlers/adapter_handlers.h"
#include "handlers/completions.h"
#include "handlers/health.h"

namespace hotswap::server {

Router build_routes(const HandlerContext* context) {
  Router router;
  auto simple = [context](HttpResponse (*handler)(const HandlerContext&)) {
    return [context, handler](const HttpRequest&, const RouteParams&) -> HandlerResult { return handler(*context); };
  };
  router.add("GET", "/health", simple(handle_health), BodyClass::kNone);
  router.add("GET", "/ready", simple(handle_ready), BodyClass::kNone);
  router.add("GET", "/metrics", simple(handle_metrics), BodyClass::kNone);
  router.add("GET", "/v1/models", simple(handle_models), BodyClass::kNone);
  router.add("POST", "/v1/completions",
             [context](const HttpRequest& request, const RouteParams&) { return handle_completions(*context, request); });
  router.add("POST", "/v1/chat/completions",
             [context](const HttpRequest& request, const RouteParams&) { return handle_chat_completions(*context, request); });
  register_adapter_routes(router, context);
  return router;
}

}  // namespace hotswap::server
