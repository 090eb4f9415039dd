// The daemon: binds the listener, loads the model, serves on N I/O threads, and on
// SIGTERM/SIGINT drains (/ready and new requests 503, running requests finish within
// timeouts.drain_ms, then are cancelled) and returns 0.
#pragma once

#include "metrics/metrics.h"
#include "server_config.h"
#include "server_state.h"

namespace hotswap::server {

class Server {
 public:
  explicit Server(ServerConfig config);

  // Blocks until the server has drained. Returns the process exit code: 0 after a drain,
  // 1 if the socket could not be bound or the model could not be loaded, 2 for a bad setting.
  int run();

 private:
  ServerConfig config_;
  ServerState state_;
  Metrics metrics_;
};

}  // namespace hotswap::server
