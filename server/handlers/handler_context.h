// What every handler reads: the configuration, the shared state (phase, engine) and the
// metrics. Owned by the Server; outlives every request.
#pragma once

#include "metrics/metrics.h"
#include "server_config.h"
#include "server_state.h"

namespace hotswap::server {

struct HandlerContext {
  const ServerConfig* config = nullptr;
  ServerState* state = nullptr;
  Metrics* metrics = nullptr;
};

}  // namespace hotswap::server
