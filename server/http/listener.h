// Accepts connections on host:port and starts one session per socket.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include "http/http_session.h"

namespace hotswap::server {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  // Binds and listens; on failure *ec is set and the listener is unusable.
  Listener(boost::asio::io_context& ioc, const SessionContext* context, const std::string& host, uint16_t port,
           boost::system::error_code* ec);

  void start();
  // Closes the acceptor; open connections are not touched.
  void stop();
  uint16_t port() const { return port_; }

 private:
  void do_accept();

  boost::asio::io_context& ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  const SessionContext* context_;
  uint16_t port_ = 0;
};

}  // namespace hotswap::server
