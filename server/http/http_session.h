// One HTTP/1.1 connection: read a request, route it, write the response, repeat while
// keep-alive. Implemented with Boost.Beast in http_session.cc (the only session TU that
// includes Beast). Every asynchronous operation owns what it reads or writes until its
// handler runs, and the session ends an exchange exactly once, whichever side (client,
// engine, timer) ends it first. Per connection: idle/header/body/write timeouts, a body limit chosen by
// route (JSON bodies vs adapter uploads), one request in flight, at most one write in
// flight (streamed tokens wait in their TokenStream and are coalesced into the next
// chunk), and client-disconnect detection that cancels the running generation.
#pragma once

#include <memory>

#include <boost/asio/ip/tcp.hpp>

#include "http/router.h"
#include "metrics/metrics.h"
#include "server_config.h"
#include "server_state.h"

namespace hotswap::server {

// Everything a session needs; owned by the Server, outlives every session.
struct SessionContext {
  const ServerConfig* config = nullptr;
  const Router* router = nullptr;
  Metrics* metrics = nullptr;
  ServerState* state = nullptr;
};

// Takes the accepted socket and serves it until the connection ends. Admission happens
// here: a connection beyond limits.max_connections (or its address's
// limits.max_connections_per_client) is answered 503 (429) with Retry-After and closed.
void start_http_session(boost::asio::ip::tcp::socket socket, const SessionContext* context);

}  // namespace hotswap::server
