#include "http/connection_refusal.h"

#include <array>
#include <atomic>
#include <chrono>
#include <memory>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "api/status_to_http.h"

namespace hotswap::server {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr std::chrono::milliseconds kLinger{2000};  // to read the answer before the close
constexpr std::size_t kMaxDiscard = 64 * 1024;       // request bytes read and dropped meanwhile
constexpr int kMaxRefusing = 256;                    // refusals in flight; beyond, a plain close

std::atomic<int> refusing{0};

const char* reason_phrase(int status) { return status == 429 ? "Too Many Requests" : "Service Unavailable"; }

std::string serialize(const HttpResponse& response) {
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + reason_phrase(response.status) + "\r\n";
  out += "Server: hotswap\r\nContent-Type: " + response.content_type + "\r\n";
  for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
  out += "Content-Length: " + std::to_string(response.body.size()) + "\r\nConnection: close\r\n\r\n";
  out += response.body;
  return out;
}

// Writes the answer, stops sending, then reads and drops what the client still sends
// (its request) until it closes or the linger time passes, so that closing does not turn
// into a reset that destroys the answer in the client's receive buffer.
class Refusal : public std::enable_shared_from_this<Refusal> {
 public:
  Refusal(tcp::socket&& socket, std::string answer)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), answer_(std::move(answer)) {
    ++refusing;
  }
  ~Refusal() { --refusing; }

  void run() {
    timer_.expires_after(kLinger);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->close();
    });
    net::async_write(socket_, net::buffer(answer_), [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
      if (ec) return self->close();
      boost::system::error_code ignored;
      self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
      self->discard();
    });
  }

 private:
  void discard() {
    socket_.async_read_some(net::buffer(sink_), [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
      self->discarded_ += n;
      if (ec || self->discarded_ > kMaxDiscard) return self->close();
      self->discard();
    });
  }

  void close() {
    timer_.cancel();
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

  tcp::socket socket_;
  net::steady_timer timer_;
  std::string answer_;
  std::array<char, 4096> sink_{};
  std::size_t discarded_ = 0;
};

}  // namespace

void refuse_connection(tcp::socket socket, const SessionContext& context, ConnectionSlots::Verdict verdict,
                       const std::string& address) {
  const ServerLimits& limits = context.config->limits;
  const bool server_full = verdict == ConnectionSlots::Verdict::kServerFull;
  spdlog::warn("event=connection_refused reason={} peer={} limit={}", server_full ? "max_connections" : "max_connections_per_client",
               address, server_full ? limits.max_connections : limits.max_connections_per_client);
  context.metrics->record_connection_refused(server_full ? "max_connections" : "max_connections_per_client");
  if (refusing.load() >= kMaxRefusing) {
    boost::system::error_code ignored;
    socket.close(ignored);
    return;
  }
  const ApiError error =
      server_full
          ? ApiError{503, "server_error", "too_many_connections",
                     "the server has " + std::to_string(limits.max_connections) +
                         " open connections, its limit (limits.max_connections); retry later",
                     ""}
          : ApiError{429, "rate_limit_error", "too_many_connections_from_client",
                     "client " + address + " already has " + std::to_string(limits.max_connections_per_client) +
                         " open connections, the limit per client address (limits.max_connections_per_client); "
                         "close one or retry later",
                     ""};
  std::make_shared<Refusal>(std::move(socket), serialize(error_response(error, context.config->retry_after_s)))->run();
}

}  // namespace hotswap::server
