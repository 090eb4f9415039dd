// The route table of `hotswap serve`: every endpoint of specs/api.md and its handler.
// Adapter routes (/v1/adapters, /v1/adapters/{name}, BodyClass::kUpload for PUT) are added
// here when the adapter registry lands.
#pragma once

#include "handlers/handler_context.h"
#include "http/router.h"

namespace hotswap::server {

// `context` must outlive the router.
Router build_routes(const HandlerContext* context);

}  // namespace hotswap::server
