// POST /v1/completions and POST /v1/chat/completions: JSON -> request struct (api/request_codec,
// defaults filled in) -> one engine GenerateRequest per choice -> a GenerationJob that answers
// as JSON or SSE.
#pragma once

#include "handlers/handler_context.h"
#include "http/router.h"

namespace hotswap::server {

HandlerResult handle_completions(const HandlerContext& context, const HttpRequest& request);
HandlerResult handle_chat_completions(const HandlerContext& context, const HttpRequest& request);

}  // namespace hotswap::server
