#include "http/http_session.h"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "api/status_to_http.h"
#include "http/connection_refusal.h"
#include "http/request_checks.h"

namespace hotswap::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kReadChunk = 4096;
constexpr std::size_t kMaxBufferedAhead = 64 * 1024;       // pipelined bytes kept while a response runs
constexpr std::size_t kMaxLingerBytes = 64ull << 20;       // discarded after an early error response
constexpr milliseconds kLingerTimeout{2000};
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";

std::string make_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

// One chunk of HTTP/1.1 chunked transfer coding.
std::string chunk_frame(std::string_view data) {
  char size[20];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string out = size;
  out.append(data);
  out += "\r\n";
  return out;
}

// Errors of Beast's HTTP parser (malformed request), as opposed to socket errors.
bool is_parse_error(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

// The status line and headers of a streamed response, with the serializer that writes
// them. One heap object owned by the write that sends it: the serializer refers to the
// message, and both must outlive the write whatever the session does meanwhile.
struct StreamHead {
  http::response<http::empty_body> message;
  std::optional<http::response_serializer<http::empty_body>> serializer;
};

// Wakes a session from the engine thread without ever holding it there: the engine thread
// only posts onto the session's strand, and the session is looked up (weakly) on the
// strand. So a session is never destroyed on the engine thread, and at most one wake is
// queued at a time.
template <class Session>
struct Waker {
  net::any_io_executor strand;
  std::weak_ptr<Session> session;
  std::atomic<bool> queued{false};

  static void wake(const std::shared_ptr<Waker>& self) {
    if (self->queued.exchange(true)) return;
    net::post(self->strand, [self] {
      self->queued.store(false);
      if (auto session = self->session.lock()) session->pump();
    });
  }
};

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket&& socket, const SessionContext* context, ConnectionSlots::Slot slot, std::string peer)
      : stream_(std::move(socket)), ctx_(context), slot_(std::move(slot)), peer_(std::move(peer)) {}

  void run() {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&HttpSession::wait_for_request, shared_from_this()));
  }

  // Strand only (the Waker posts it there).
  void pump() {
    if (!async_ || writing_ || closed_) return;
    ResponseProgress progress = async_->poll();
    if (progress.full) {
      response_complete_ = true;
      return respond(std::move(*progress.full));
    }
    if (progress.stream_head) return write_stream_head(std::move(*progress.stream_head), std::move(progress.stream_bytes), progress.stream_end);
    if (!progress.stream_bytes.empty() || progress.stream_end) write_chunk(progress.stream_bytes, progress.stream_end);
  }

 private:
  enum class Next { kRead, kLinger };

  const ServerConfig& config() const { return *ctx_->config; }
  bool draining() const { return ctx_->state->phase() == Phase::kDraining; }

  // ---- reading a request ----

  // Waits for the first byte of the next request. A connection that has not sent a request
  // yet gets the header timeout (an idle slot is not the client's to hold); between requests
  // on a keep-alive connection, the idle timeout.
  void wait_for_request() {
    if (closed_) return;
    if (buffer_.size() > 0) return read_header();
    stream_.expires_after(milliseconds(requests_ == 0 ? config().timeouts.header_ms : config().timeouts.idle_ms));
    stream_.async_read_some(buffer_.prepare(kReadChunk), beast::bind_front_handler(&HttpSession::on_first_bytes, shared_from_this()));
  }

  void on_first_bytes(beast::error_code ec, std::size_t bytes) {
    if (closed_) return;
    if (ec) return close();  // timeout or the client closed: nothing to answer
    buffer_.commit(bytes);
    read_header();
  }

  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(config().limits.max_header_bytes));
    parser_->body_limit(std::max(config().limits.max_body_bytes, config().limits.max_upload_bytes));
    request_ = HttpRequest{};
    request_.request_id = make_request_id();
    route_ = "-";
    status_ = 0;
    access_ = AccessInfo{};
    next_ = Next::kRead;
    exchange_open_ = true;
    response_complete_ = false;
    started_ = Clock::now();
    ++requests_;
    stream_.expires_after(milliseconds(config().timeouts.header_ms));
    http::async_read_header(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpSession::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (closed_) return;
    if (ec == http::error::end_of_stream || ec == beast::error::timeout) return close();
    if (ec == http::error::header_limit)
      return respond_and_close({431, "invalid_request_error", "header_too_large",
                                "request header is larger than the limit of " +
                                    std::to_string(config().limits.max_header_bytes) + " bytes", ""});
    if (ec && is_parse_error(ec))
      return respond_and_close({400, "invalid_request_error", "malformed_http", "malformed HTTP request: " + ec.message(), ""});
    if (ec) return close();

    const auto& message = parser_->get();
    request_.method = std::string(message.method_string());
    request_.target = std::string(message.target());
    request_.path = request_path(request_.target);
    for (const auto& field : message) {
      std::string& value = request_.headers[ascii_lower(std::string_view(field.name_string().data(), field.name_string().size()))];
      value += value.empty() ? std::string(field.value()) : ", " + std::string(field.value());
    }
    if (auto error = check_transfer_coding(request_.header("transfer-encoding"))) return respond_and_close(*error);
    body_limit_ = ctx_->router->body_class(request_.path) == BodyClass::kUpload ? config().limits.max_upload_bytes
                                                                                 : config().limits.max_body_bytes;
    if (auto length = parser_->content_length(); length && *length > body_limit_)
      return respond_and_close(body_too_large(body_limit_));
    parser_->body_limit(body_limit_);
    if (parser_->is_done()) return handle_request();
    if (ascii_lower(request_.header("expect")) == "100-continue") {
      start_write();
      return net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                              [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                if (!self->finish_write(ec)) return;
                                if (ec) return self->close();
                                self->read_body();
                              });
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(milliseconds(config().timeouts.body_ms));
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpSession::on_body, shared_from_this()));
  }

  void on_body(beast::error_code ec, std::size_t) {
    if (closed_) return;
    if (ec == http::error::body_limit) return respond_and_close(body_too_large(body_limit_));
    if (ec == beast::error::timeout || ec == http::error::end_of_stream) return close();
    if (ec && is_parse_error(ec))
      return respond_and_close({400, "invalid_request_error", "malformed_http", "malformed HTTP request body: " + ec.message(), ""});
    if (ec) return close();
    handle_request();
  }

  // ---- routing ----

  void handle_request() {
    auto message = parser_->release();
    request_.body = std::move(message.body());
    keep_alive_ = message.keep_alive();
    http11_ = message.version() >= 11;
    stream_.expires_never();  // handler time is not the client's time

    const RouteMatch match = ctx_->router->match(request_.method, request_.path);
    route_ = match.route;
    if (match.outcome == RouteMatch::Outcome::kNotFound)
      return respond(error_response(route_not_found(request_.method, request_.path)));
    if (match.outcome == RouteMatch::Outcome::kMethodNotAllowed) {
      HttpResponse response = error_response(method_not_allowed(request_.method, request_.path, match.allow));
      response.headers.emplace_back("Allow", match.allow);
      return respond(std::move(response));
    }
    if (!authorized(config().api_key, request_))
      return respond(error_response(api_error_from_status(
          Status(StatusCode::kUnauthenticated, "missing or wrong API key: send the header 'Authorization: Bearer <key>'"))));
    if (auto error = check_content_type(request_, match.body)) return respond(error_response(*error));

    HandlerResult result;
    try {
      result = (*match.handler)(request_, match.params);
    } catch (const std::exception& e) {
      spdlog::error("event=handler_failed id={} route={} error=\"{}\"", request_.request_id, route_, e.what());
      result = error_response(api_error_from_status(Status::internal("internal error while handling the request")));
    }
    if (auto* response = std::get_if<HttpResponse>(&result)) return respond(std::move(*response));
    begin_async(std::move(std::get<std::shared_ptr<AsyncResponse>>(result)));
  }

  // ---- writing ----
  // Every write owns what it writes (captured in its handler), so nothing the session does
  // while it is in flight — a disconnect seen by the probe, the engine ending the stream,
  // the exchange being recorded — can free memory the write still reads. At most one write
  // is in flight; each handler calls finish_write() first.

  void start_write() {
    writing_ = true;
    stream_.expires_after(milliseconds(config().timeouts.write_ms));
  }

  // False when the session closed while the write was in flight: the handler does nothing more.
  bool finish_write(const beast::error_code&) {
    writing_ = false;
    if (closed_) return false;
    stream_.expires_never();
    return true;
  }

  void respond(HttpResponse response) {
    status_ = response.status;
    access_ = response.access;
    auto message = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(response.status), 11);
    message->set(http::field::server, "hotswap");
    message->set(http::field::content_type, response.content_type);
    message->set("x-request-id", request_.request_id);
    for (auto& [name, value] : response.headers) message->set(name, value);
    message->body() = std::move(response.body);
    message->keep_alive(keep_alive_ && !draining() && next_ == Next::kRead);
    message->prepare_payload();
    start_write();
    http::async_write(stream_, *message, [self = shared_from_this(), message](beast::error_code ec, std::size_t) {
      if (!self->finish_write(ec)) return;
      self->end_exchange();
      if (ec) return self->close();
      self->after_exchange(message->keep_alive() ? Next::kRead : Next::kLinger);
    });
  }

  // An error answered before the body was read: the connection cannot be reused.
  void respond_and_close(const ApiError& error) {
    keep_alive_ = false;
    next_ = Next::kLinger;
    respond(error_response(error, config().retry_after_s));
  }

  // ---- responses produced over time (generation) ----

  void begin_async(std::shared_ptr<AsyncResponse> response) {
    async_ = std::move(response);
    ++ctx_->state->active_generations;
    auto waker = std::make_shared<Waker<HttpSession>>();
    waker->strand = stream_.get_executor();
    waker->session = weak_from_this();
    async_->start([waker] { Waker<HttpSession>::wake(waker); });
    start_probe();
    pump();
  }

  void write_stream_head(HttpResponse head, std::string bytes, bool end) {
    status_ = head.status;
    auto out = std::make_shared<StreamHead>();
    out->message = http::response<http::empty_body>(static_cast<http::status>(head.status), 11);
    out->message.set(http::field::server, "hotswap");
    out->message.set(http::field::content_type, head.content_type);
    out->message.set(http::field::cache_control, "no-cache");
    out->message.set("x-request-id", request_.request_id);
    for (auto& [name, value] : head.headers) out->message.set(name, value);
    // HTTP/1.0 has no chunked coding: the body then ends when the connection closes.
    stream_keep_alive_ = keep_alive_ && !draining() && http11_;
    out->message.keep_alive(stream_keep_alive_);
    if (http11_) out->message.chunked(true);
    out->serializer.emplace(out->message);
    pending_bytes_ = std::move(bytes);
    pending_end_ = end;
    start_write();
    http::async_write_header(stream_, *out->serializer, [self = shared_from_this(), out](beast::error_code ec, std::size_t) {
      self->on_stream_written(ec);
    });
  }

  void write_chunk(std::string_view bytes, bool end) {
    auto out = std::make_shared<std::string>();
    if (!bytes.empty()) *out = http11_ ? chunk_frame(bytes) : std::string(bytes);
    if (end) {
      if (http11_) *out += kLastChunk;
      stream_done_ = true;
      response_complete_ = true;
    }
    if (out->empty()) return after_stream_write();
    start_write();
    net::async_write(stream_, net::buffer(*out), [self = shared_from_this(), out](beast::error_code ec, std::size_t) {
      self->on_stream_written(ec);
    });
  }

  void on_stream_written(beast::error_code ec) {
    if (!finish_write(ec)) return;
    if (ec) return client_gone(ec == beast::error::timeout ? "client stopped reading (write timeout)" : "write failed: " + ec.message());
    after_stream_write();
  }

  void after_stream_write() {
    if (!pending_bytes_.empty() || pending_end_) {
      std::string bytes = std::exchange(pending_bytes_, {});
      const bool end = std::exchange(pending_end_, false);
      return write_chunk(bytes, end);
    }
    if (stream_done_) {
      end_exchange();
      return after_exchange(stream_keep_alive_ ? Next::kRead : Next::kLinger);
    }
    pump();
  }

  // While a response runs, a read stays pending so that a client that goes away is noticed
  // at once (EOF or reset) and its generation cancelled. It reads into its own buffer and
  // keeps the bytes of a pipelined next request in buffer_.
  void start_probe() {
    if (probing_ || closed_ || buffer_.size() > kMaxBufferedAhead) return;
    probing_ = true;
    stream_.async_read_some(net::buffer(probe_buffer_), beast::bind_front_handler(&HttpSession::on_probe, shared_from_this()));
  }

  void on_probe(beast::error_code ec, std::size_t bytes) {
    probing_ = false;
    if (closed_) return;
    if (!ec) {
      net::buffer_copy(buffer_.prepare(bytes), net::buffer(probe_buffer_.data(), bytes));
      buffer_.commit(bytes);
    }
    if (async_) {
      // A client that closes once it has the whole response (e.g. after [DONE]) is done,
      // not gone: the last write finishes the exchange as usual, and then the session
      // closes. The EOF is consumed here and will not be reported to another read (the
      // reactor waits for a new edge that never comes), so it must be remembered.
      if (ec && response_complete_) {
        peer_finished_ = true;
        return;
      }
      // The socket was closed under both operations (a write timeout): the write's handler,
      // which runs next, tells why.
      if (ec == net::error::operation_aborted && writing_) return;
      if (ec == net::error::eof) return client_gone("client closed the connection");
      if (ec == beast::error::timeout) return client_gone("client stopped reading (write timeout)");
      if (ec) return client_gone("connection error: " + ec.message());
      return start_probe();
    }
    // The exchange ended while the probe was pending (after_exchange cancelled it).
    if (ec && ec != net::error::operation_aborted) return close();
    proceed(next_);
  }

  // The client went away (the probe saw EOF or a reset, or a write failed or timed out).
  // Handled once: later completions find the session closed.
  void client_gone(const std::string& reason) {
    if (closed_) return;
    if (async_ && !response_complete_) {
      spdlog::info("event=client_disconnected id={} route={} reason=\"{}\"", request_.request_id, route_, reason);
      ctx_->metrics->record_cancelled_by_client();
      status_ = 499;  // nginx's "client closed request", for the access log and metrics
    }
    close();
  }

  // ---- between requests ----

  // Records the finished exchange once (metrics, access log) and releases its response.
  // Safe with a write in flight: writes own their buffers.
  void end_exchange() {
    if (!exchange_open_) return;
    exchange_open_ = false;
    const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
    if (async_) access_ = async_->access_info();
    ctx_->metrics->record_request(route_, status_, seconds);
    spdlog::info("access id={} method={} route={} path={} status={} prompt_tokens={} completion_tokens={} latency_ms={:.1f} peer={}",
                 request_.request_id, request_.method, route_, request_.path, status_, access_.prompt_tokens,
                 access_.completion_tokens, seconds * 1000.0, peer_);
    if (async_) {
      if (!response_complete_) async_->cancel();  // stop the engine work of an unfinished response, once
      async_.reset();
      --ctx_->state->active_generations;
    }
    stream_done_ = false;
    pending_bytes_.clear();
    pending_end_ = false;
  }

  void after_exchange(Next next) {
    next_ = next;
    if (probing_) {
      stream_.socket().cancel();  // on_probe continues with proceed(next_)
      return;
    }
    proceed(next);
  }

  void proceed(Next next) {
    if (peer_finished_) return close();  // the client closed or reset after the last response
    if (next == Next::kLinger) return linger_close();
    wait_for_request();
  }

  // Closes after an error response without resetting the connection: stop sending, then
  // read and discard what the client is still sending (an oversized body) for a bounded
  // time, so it can read the response instead of getting a reset.
  void linger_close() {
    if (closed_) return;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kLingerTimeout);
    discard();
  }

  void discard() {
    stream_.async_read_some(net::buffer(probe_buffer_), [self = shared_from_this()](beast::error_code ec, std::size_t bytes) {
      if (self->closed_) return;
      self->discarded_ += bytes;
      if (ec || self->discarded_ > kMaxLingerBytes) return self->close();
      self->discard();
    });
  }

  // Idempotent. Pending operations complete with operation_aborted and find closed_ set.
  void close() {
    if (closed_) return;
    closed_ = true;
    if (async_) end_exchange();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const SessionContext* ctx_;
  ConnectionSlots::Slot slot_;  // held for the session's life
  std::string peer_;
  int64_t requests_ = 0;        // requests begun on this connection

  // The current exchange.
  HttpRequest request_;
  std::string route_ = "-";
  int status_ = 0;
  AccessInfo access_;
  Clock::time_point started_;
  bool keep_alive_ = false;
  bool http11_ = true;
  std::size_t body_limit_ = 0;
  Next next_ = Next::kRead;
  bool exchange_open_ = false;
  bool response_complete_ = false;  // the last bytes of the response are written or being written

  // Writing.
  bool writing_ = false;
  std::shared_ptr<AsyncResponse> async_;
  bool stream_keep_alive_ = false;
  std::string pending_bytes_;
  bool pending_end_ = false;
  bool stream_done_ = false;

  // Reading while a response runs (and discarding while lingering), and closing.
  bool probing_ = false;
  bool peer_finished_ = false;  // the probe saw the client's EOF or reset after a complete response
  bool closed_ = false;
  std::array<char, kReadChunk> probe_buffer_{};
  std::size_t discarded_ = 0;
};

}  // namespace

void start_http_session(tcp::socket socket, const SessionContext* context) {
  beast::error_code ec;
  const auto endpoint = socket.remote_endpoint(ec);
  const std::string address = ec ? "-" : endpoint.address().to_string();
  const std::string peer = ec ? "-" : address + ":" + std::to_string(endpoint.port());
  const ServerLimits& limits = context->config->limits;
  ConnectionSlots::Slot slot;
  const auto verdict = context->state->connections.try_acquire(address, limits.max_connections,
                                                               limits.max_connections_per_client, &slot);
  if (verdict != ConnectionSlots::Verdict::kAdmitted)
    return refuse_connection(std::move(socket), *context, verdict, address);
  std::make_shared<HttpSession>(std::move(socket), context, std::move(slot), peer)->run();
}

}  // namespace hotswap::server
