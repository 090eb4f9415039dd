#include "http/listener.h"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/spdlog.h>

namespace hotswap::server {

namespace net = boost::asio;
using tcp = net::ip::tcp;

Listener::Listener(net::io_context& ioc, const SessionContext* context, const std::string& host, uint16_t port,
                   boost::system::error_code* ec)
    : ioc_(ioc), acceptor_(net::make_strand(ioc)), context_(context) {
  const net::ip::address address = net::ip::make_address(host, *ec);
  if (*ec) return;
  const tcp::endpoint endpoint(address, port);
  acceptor_.open(endpoint.protocol(), *ec);
  if (*ec) return;
  acceptor_.set_option(net::socket_base::reuse_address(true), *ec);
  if (*ec) return;
  acceptor_.bind(endpoint, *ec);
  if (*ec) return;
  acceptor_.listen(net::socket_base::max_listen_connections, *ec);
  if (*ec) return;
  port_ = acceptor_.local_endpoint(*ec).port();
}

void Listener::start() { do_accept(); }

void Listener::stop() {
  net::post(acceptor_.get_executor(), [self = shared_from_this()] {
    boost::system::error_code ignored;
    self->acceptor_.close(ignored);
  });
}

void Listener::do_accept() {
  // Each connection gets its own strand: its handlers never run concurrently.
  acceptor_.async_accept(net::make_strand(ioc_), [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !self->acceptor_.is_open()) return;
    if (ec) spdlog::warn("event=accept_failed error=\"{}\"", ec.message());
    else start_http_session(std::move(socket), self->context_);  // admits it or answers 503/429
    self->do_accept();
  });
}

}  // namespace hotswap::server
