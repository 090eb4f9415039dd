// Answers a connection that gets no session (every slot taken, or its address at its own
// cap): an immediate 503 or 429 with Retry-After, then a graceful close, rather than a
// reset the client cannot tell from a crash.
#pragma once

#include <string>

#include <boost/asio/ip/tcp.hpp>

#include "http/connection_slots.h"
#include "http/http_session.h"

namespace hotswap::server {

void refuse_connection(boost::asio::ip::tcp::socket socket, const SessionContext& context,
                       ConnectionSlots::Verdict verdict, const std::string& address);

}  // namespace hotswap::server
