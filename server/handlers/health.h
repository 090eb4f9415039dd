// GET /health, /ready, /metrics and /v1/models.
#pragma once

#include "handlers/handler_context.h"
#include "http/router.h"

namespace hotswap::server {

HttpResponse handle_health(const HandlerContext& context);
HttpResponse handle_ready(const HandlerContext& context);
HttpResponse handle_metrics(const HandlerContext& context);
HttpResponse handle_models(const HandlerContext& context);

}  // namespace hotswap::server
