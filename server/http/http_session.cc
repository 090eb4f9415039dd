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

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
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

bool same_secret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Errors of Beast's HTTP parser (malformed request), as opposed to socket errors.
bool is_parse_error(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket&& socket, const SessionContext* context) : stream_(std::move(socket)), ctx_(context) {
    ++ctx_->state->open_connections;
    beast::error_code ec;
    const auto peer = stream_.socket().remote_endpoint(ec);
    if (!ec) peer_ = peer.address().to_string() + ":" + std::to_string(peer.port());
  }
  ~HttpSession() { --ctx_->state->open_connections; }

  void run() {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&HttpSession::wait_for_request, shared_from_this()));
  }

 private:
  enum class Next { kRead, kLinger };

  const ServerConfig& config() const { return *ctx_->config; }
  bool draining() const { return ctx_->state->phase() == Phase::kDraining; }

  // ---- reading a request ----

  // Keep-alive idle time: wait for the first byte of the next request.
  void wait_for_request() {
    if (closing_) return;
    if (buffer_.size() > 0) return read_header();
    stream_.expires_after(milliseconds(config().timeouts.idle_ms));
    stream_.async_read_some(buffer_.prepare(kReadChunk), beast::bind_front_handler(&HttpSession::on_first_bytes, shared_from_this()));
  }

  void on_first_bytes(beast::error_code ec, std::size_t bytes) {
    if (ec) return close();  // idle timeout or the client closed: nothing to answer
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
    stream_.expires_after(milliseconds(config().timeouts.header_ms));
    http::async_read_header(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpSession::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
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
    request_.path = request_.target.substr(0, request_.target.find('?'));
    for (const auto& field : message) {
      std::string& value = request_.headers[lower(std::string_view(field.name_string().data(), field.name_string().size()))];
      value += value.empty() ? std::string(field.value()) : ", " + std::string(field.value());
    }
    body_limit_ = ctx_->router->body_class(request_.path) == BodyClass::kUpload ? config().limits.max_upload_bytes
                                                                                 : config().limits.max_body_bytes;
    if (auto length = parser_->content_length(); length && *length > body_limit_)
      return respond_and_close(body_too_large(body_limit_));
    parser_->body_limit(body_limit_);
    if (parser_->is_done()) return handle_request();
    if (lower(request_.header("expect")) == "100-continue") {
      stream_.expires_after(milliseconds(config().timeouts.write_ms));
      return net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                              [self = shared_from_this()](beast::error_code ec, std::size_t) {
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
    if (!authorized())
      return respond(error_response(api_error_from_status(
          Status(StatusCode::kUnauthenticated, "missing or wrong API key: send the header 'Authorization: Bearer <key>'"))));

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

  bool authorized() const {
    const std::string& key = config().api_key;
    if (key.empty() || request_.path.rfind("/v1/", 0) != 0) return true;
    return same_secret(request_.header("authorization"), "Bearer " + key);
  }

  // ---- whole responses ----

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
    full_response_ = message;
    writing_ = true;
    stream_.expires_after(milliseconds(config().timeouts.write_ms));
    http::async_write(stream_, *full_response_, beast::bind_front_handler(&HttpSession::on_response_written, shared_from_this()));
  }

  void on_response_written(beast::error_code ec, std::size_t) {
    writing_ = false;
    stream_.expires_never();
    const bool keep = full_response_->keep_alive();
    full_response_.reset();
    end_exchange();
    if (ec) return close();
    after_exchange(keep ? Next::kRead : Next::kLinger);
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
    std::weak_ptr<HttpSession> weak = weak_from_this();
    async_->start([weak] {
      if (auto self = weak.lock()) self->wake();
    });
    start_probe();
    pump();
  }

  // Any thread. Posts at most one pump at a time onto the session's strand.
  void wake() {
    if (wake_posted_.exchange(true)) return;
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->wake_posted_.store(false);
      self->pump();
    });
  }

  void pump() {
    if (!async_ || writing_ || closing_) return;
    ResponseProgress progress = async_->poll();
    if (progress.full) {
      response_complete_ = true;
      return respond(std::move(*progress.full));
    }
    if (progress.stream_head) return write_stream_head(std::move(*progress.stream_head), std::move(progress.stream_bytes), progress.stream_end);
    if (!progress.stream_bytes.empty() || progress.stream_end) write_chunk(progress.stream_bytes, progress.stream_end);
  }

  void write_stream_head(HttpResponse head, std::string bytes, bool end) {
    status_ = head.status;
    head_.emplace(static_cast<http::status>(head.status), 11);
    head_->set(http::field::server, "hotswap");
    head_->set(http::field::content_type, head.content_type);
    head_->set(http::field::cache_control, "no-cache");
    head_->set("x-request-id", request_.request_id);
    for (auto& [name, value] : head.headers) head_->set(name, value);
    // HTTP/1.0 has no chunked coding: the body then ends when the connection closes.
    head_->keep_alive(keep_alive_ && !draining() && http11_);
    if (http11_) head_->chunked(true);
    head_serializer_.emplace(*head_);
    pending_bytes_ = std::move(bytes);
    pending_end_ = end;
    writing_ = true;
    stream_.expires_after(milliseconds(config().timeouts.write_ms));
    http::async_write_header(stream_, *head_serializer_, beast::bind_front_handler(&HttpSession::on_stream_written, shared_from_this()));
  }

  void write_chunk(std::string_view bytes, bool end) {
    out_.clear();
    if (!bytes.empty()) out_ = http11_ ? chunk_frame(bytes) : std::string(bytes);
    if (end) {
      if (http11_) out_ += kLastChunk;
      stream_done_ = true;
      response_complete_ = true;
    }
    if (out_.empty()) return on_stream_written({}, 0);
    writing_ = true;
    stream_.expires_after(milliseconds(config().timeouts.write_ms));
    net::async_write(stream_, net::buffer(out_), beast::bind_front_handler(&HttpSession::on_stream_written, shared_from_this()));
  }

  void on_stream_written(beast::error_code ec, std::size_t) {
    writing_ = false;
    stream_.expires_never();
    if (ec) return client_gone(ec == beast::error::timeout ? "client stopped reading (write timeout)" : "write failed: " + ec.message());
    if (!pending_bytes_.empty() || pending_end_) {
      std::string bytes = std::exchange(pending_bytes_, {});
      const bool end = std::exchange(pending_end_, false);
      return write_chunk(bytes, end);
    }
    if (stream_done_) {
      const bool keep = head_->keep_alive();
      end_exchange();
      return after_exchange(keep ? Next::kRead : Next::kLinger);
    }
    pump();
  }

  // While a response runs, a read stays pending so that a client that goes away is noticed
  // at once (EOF or reset) and its generation cancelled. Bytes of a pipelined next request
  // are kept in buffer_.
  void start_probe() {
    if (probing_ || closing_ || buffer_.size() > kMaxBufferedAhead) return;
    probing_ = true;
    stream_.async_read_some(buffer_.prepare(kReadChunk), beast::bind_front_handler(&HttpSession::on_probe, shared_from_this()));
  }

  void on_probe(beast::error_code ec, std::size_t bytes) {
    probing_ = false;
    if (!ec) buffer_.commit(bytes);
    if (async_) {
      // A client that closes once it has the whole response (e.g. after [DONE]) is done,
      // not gone: the last write finishes the exchange as usual.
      if (ec && response_complete_) return;
      if (ec) return client_gone(ec == net::error::eof ? "client closed the connection" : "connection error: " + ec.message());
      return start_probe();
    }
    if (closing_) return;
    if (ec && ec != net::error::operation_aborted) return close();
    proceed(next_);
  }

  void client_gone(const std::string& reason) {
    if (async_) {
      spdlog::info("event=client_disconnected id={} route={} reason=\"{}\"", request_.request_id, route_, reason);
      ctx_->metrics->record_cancelled_by_client();
      async_->cancel();
      status_ = 499;  // nginx's "client closed request", for the access log and metrics
      end_exchange();
    }
    close();
  }

  // ---- between requests ----

  // Records the finished exchange once (metrics, access log) and releases its response.
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
      async_.reset();
      --ctx_->state->active_generations;
    }
    head_serializer_.reset();
    head_.reset();
    stream_done_ = false;
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
    if (next == Next::kLinger) return linger_close();
    wait_for_request();
  }

  // Closes after an error response without resetting the connection: stop sending, then
  // read and discard what the client is still sending (an oversized body) for a bounded
  // time, so it can read the response instead of getting a reset.
  void linger_close() {
    closing_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kLingerTimeout);
    discard();
  }

  void discard() {
    stream_.async_read_some(net::buffer(discard_), [self = shared_from_this()](beast::error_code ec, std::size_t bytes) {
      self->discarded_ += bytes;
      if (ec || self->discarded_ > kMaxLingerBytes) return self->close_socket();
      self->discard();
    });
  }

  void close() {
    closing_ = true;
    if (async_) {
      async_->cancel();
      end_exchange();
    }
    close_socket();
  }

  void close_socket() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const SessionContext* ctx_;
  std::string peer_ = "-";

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
  std::shared_ptr<http::response<http::string_body>> full_response_;
  std::shared_ptr<AsyncResponse> async_;
  std::atomic<bool> wake_posted_{false};
  std::optional<http::response<http::empty_body>> head_;
  std::optional<http::response_serializer<http::empty_body>> head_serializer_;
  std::string out_;
  std::string pending_bytes_;
  bool pending_end_ = false;
  bool stream_done_ = false;

  // Reading while a response runs, and closing.
  bool probing_ = false;
  bool closing_ = false;
  std::array<char, 4096> discard_{};
  std::size_t discarded_ = 0;
};

}  // namespace

void start_http_session(tcp::socket socket, const SessionContext* context) {
  std::make_shared<HttpSession>(std::move(socket), context)->run();
}

}  // namespace hotswap::server
