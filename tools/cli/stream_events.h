// How the CLI's commands (generate, eval) follow an engine request: block until its stream
// ends, handing every event to the caller in order.
#pragma once

#include <functional>

#include "engine/token_stream.h"

namespace hotswap::cli {

// Returns after the event that carries `finish` has been handed over. Sets the stream's
// notifier (the caller must not have set one).
void for_each_event(TokenStream& stream, const std::function<void(TokenEvent&)>& on_event);

}  // namespace hotswap::cli
