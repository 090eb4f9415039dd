// Test harness for the HTTP session (server/http/http_session.cc) over real loopback sockets:
// an in-process io_context with an acceptor that hands each connection to
// start_http_session(), a Router with test handlers (a synchronous one and a fake
// AsyncResponse), and a raw POSIX client that can close, reset (SO_LINGER 0) or stop
// reading at any point. Shared by tests/unit/server_session/http_session_test.cc and the
// libFuzzer target tests/fuzz/http_session_fuzz.cc. No engine: the session only sees the
// Router, so the fake stands in for a generation.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include "http/http_session.h"
#include "http/http_types.h"
#include "http/router.h"
#include "metrics/metrics.h"
#include "server_config.h"
#include "server_state.h"

namespace hotswap::server::testing {

using Millis = std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// Polls `done` until it holds or `timeout` passes; true if it held.
// Connections the server holds open (admitted, session not yet destroyed): ConnectionSlots
// since issue 11, the open_connections counter before it.
template <typename State>
int64_t open_connections(const State& state) {
  if constexpr (requires { state.connections.open(); }) {
    return state.connections.open();
  } else {
    return state.open_connections.load();
  }
}

template <typename Pred>
bool wait_for(Pred done, Millis timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!done()) {
    if (SteadyClock::now() >= deadline) return done();
    std::this_thread::sleep_for(Millis(1));
  }
  return true;
}

// ---- the fake AsyncResponse ----

// One thing the fake's producer (the test thread, standing in for the engine) makes ready.
struct FakeItem {
  enum class Kind { kHead, kBytes, kEnd, kFull };
  Kind kind = Kind::kBytes;
  std::string bytes;  // kBytes: body bytes; kFull: the body
  int status = 200;   // kHead, kFull

  static FakeItem head(int status = 200) { return {Kind::kHead, "", status}; }
  static FakeItem data(std::string bytes) { return {Kind::kBytes, std::move(bytes), 200}; }
  static FakeItem end() { return {Kind::kEnd, "", 200}; }
  static FakeItem full(std::string body, int status = 200) { return {Kind::kFull, std::move(body), status}; }
};

// An AsyncResponse whose output is pushed from any thread (push() calls the session's wake
// like TokenStream's notifier does), or scripted: each poll() returns the next step of a
// fixed script and wakes the session again while steps remain (deterministic, no thread).
// Records every call, and the violations of the AsyncResponse contract it can see: calls
// that overlap (poll/cancel must run on the session's strand), poll() after cancel() or
// after the end, cancel() more than once.
class FakeAsyncResponse : public AsyncResponse {
 public:
  using Script = std::vector<std::vector<FakeItem>>;

  FakeAsyncResponse() = default;
  explicit FakeAsyncResponse(Script script) : script_(std::move(script)), scripted_(true) {}

  // Makes `item` ready and wakes the session (any thread). Ignored once the response ended.
  void push(FakeItem item) {
    Wake wake;
    {
      std::lock_guard lock(mu_);
      ready_.push_back(std::move(item));
      wake = wake_;
    }
    if (wake) wake();
  }
  void push_all(std::vector<FakeItem> items) {
    Wake wake;
    {
      std::lock_guard lock(mu_);
      for (auto& item : items) ready_.push_back(std::move(item));
      wake = wake_;
    }
    if (wake) wake();
  }

  void start(Wake wake) override {
    Enter enter(this);
    ++starts;
    std::lock_guard lock(mu_);
    wake_ = std::move(wake);
  }

  ResponseProgress poll() override {
    Enter enter(this);
    ++polls;
    if (cancels.load() > 0) ++polls_after_cancel;
    if (ended_.load()) ++polls_after_end;
    std::vector<FakeItem> items;
    Wake wake_again;
    {
      std::lock_guard lock(mu_);
      if (scripted_) {
        if (step_ < script_.size()) items = std::move(script_[step_++]);
        if (step_ < script_.size()) wake_again = wake_;
      } else {
        items.assign(std::make_move_iterator(ready_.begin()), std::make_move_iterator(ready_.end()));
        ready_.clear();
      }
    }
    ResponseProgress progress;
    for (FakeItem& item : items) {
      if (ended_.load()) break;
      switch (item.kind) {
        case FakeItem::Kind::kFull: {
          HttpResponse full;
          full.status = item.status;
          full.content_type = "text/plain";
          full.body = std::move(item.bytes);
          full.access.completion_tokens = 1;
          progress.full = std::move(full);
          ended_ = true;
          break;
        }
        case FakeItem::Kind::kHead:
          if (head_sent_) break;
          head_sent_ = true;
          progress.stream_head.emplace();
          progress.stream_head->status = item.status;
          progress.stream_head->content_type = "text/event-stream";
          break;
        case FakeItem::Kind::kBytes:
          if (!head_sent_) {  // bytes before a head: the head goes first, as GenerationJob does
            head_sent_ = true;
            progress.stream_head.emplace();
            progress.stream_head->content_type = "text/event-stream";
          }
          progress.stream_bytes += item.bytes;
          ++chunks_polled;
          break;
        case FakeItem::Kind::kEnd:
          if (!head_sent_) {
            head_sent_ = true;
            progress.stream_head.emplace();
            progress.stream_head->content_type = "text/event-stream";
          }
          progress.stream_end = true;
          ended_ = true;
          break;
      }
    }
    if (wake_again) wake_again();  // only posts a pump; the session polls again later
    return progress;
  }

  void cancel() override {
    Enter enter(this);
    ++cancels;
    if (ended_.load()) ++cancels_after_end;
  }

  AccessInfo access_info() const override { return AccessInfo{1, chunks_polled.load()}; }

  bool ended() const { return ended_.load(); }

  std::atomic<int> starts{0};
  std::atomic<int> polls{0};
  std::atomic<int> cancels{0};
  std::atomic<int> cancels_after_end{0};  // poll() had returned the end (whole response or stream end)
  std::atomic<int> polls_after_cancel{0};
  std::atomic<int> polls_after_end{0};
  std::atomic<int> overlapping_calls{0};  // start/poll/cancel running at the same time (not on one strand)
  std::atomic<int> chunks_polled{0};

 private:
  struct Enter {
    explicit Enter(FakeAsyncResponse* f) : f(f) {
      if (f->in_call_.fetch_add(1) != 0) ++f->overlapping_calls;
    }
    ~Enter() { f->in_call_.fetch_sub(1); }
    FakeAsyncResponse* f;
  };

  std::mutex mu_;
  Wake wake_;
  std::deque<FakeItem> ready_;
  Script script_;
  std::size_t step_ = 0;
  bool scripted_ = false;
  bool head_sent_ = false;  // strand only
  std::atomic<bool> ended_{false};
  std::atomic<int> in_call_{0};
};

// ---- the server side ----

// Routes: GET /sync -> 200 "hello" (sync); GET /big -> 200 with a body of `big_body_bytes`
// (sync); POST /stream -> a FakeAsyncResponse made by `make_fake` (default: an empty manual
// fake), registered in `fakes` for the test to drive; GET /health -> 200 (BodyClass::kNone);
// PUT /upload/{name} -> 200 with the body length (BodyClass::kUpload).
class TestServer {
 public:
  struct Options {
    int io_threads = 2;
    int server_sndbuf = 0;  // SO_SNDBUF of accepted sockets; 0 = the kernel's default
    std::size_t big_body_bytes = 4 << 20;
  };

  explicit TestServer(ServerConfig config) : TestServer(std::move(config), Options{}) {}
  TestServer(ServerConfig config, Options options)
      : config_(std::move(config)), options_(options), acceptor_(boost::asio::make_strand(ioc_)) {
    state_.set_phase(Phase::kReady);
    add_routes();
    ctx_.config = &config_;
    ctx_.router = &router_;
    ctx_.metrics = &metrics_;
    ctx_.state = &state_;
    namespace net = boost::asio;
    const net::ip::tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(net::socket_base::max_listen_connections);
    port_ = acceptor_.local_endpoint().port();
    do_accept();
    for (int i = 0; i < options_.io_threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }

  ~TestServer() {
    boost::asio::post(acceptor_.get_executor(), [this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
    });
    work_.reset();
    // Sessions still open (a failed test) would keep run() going: give them a moment, then stop.
    wait_for([this] { return open_connections(state_) == 0; }, Millis(2000));
    ioc_.stop();
    for (auto& t : threads_) t.join();
    // The fakes hold the sessions' wake functions, which hold strand executors: release them
    // while the io_context (and its strand service) still exists.
    std::lock_guard lock(mu_);
    fakes_.clear();
    make_fake_ = nullptr;
  }

  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  uint16_t port() const { return port_; }
  ServerState& state() { return state_; }
  Metrics& metrics() { return metrics_; }
  const ServerConfig& config() const { return config_; }

  // Connections accepted so far (a connection counts in open_connections() only once accepted).
  int accepted() const { return accepted_.load(); }
  // The fd of the last accepted socket (the session owns it; read-only use: FIONREAD).
  int last_server_fd() const { return last_fd_.load(); }

  // Every accepted connection has ended and its session was destroyed.
  bool idle() const { return open_connections(state_) == 0 && state_.active_generations.load() == 0; }
  bool wait_idle(int expected_accepts, Millis timeout = Millis(10000)) {
    return wait_for([&] { return accepted_.load() >= expected_accepts && idle(); }, timeout);
  }

  // The fake the n-th POST /stream made (0-based), waiting for the handler to run.
  std::shared_ptr<FakeAsyncResponse> wait_fake(std::size_t n, Millis timeout = Millis(10000)) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return fakes_.size() > n; })) return nullptr;
    return fakes_[n];
  }
  std::vector<std::shared_ptr<FakeAsyncResponse>> fakes() {
    std::lock_guard lock(mu_);
    return fakes_;
  }
  void clear_fakes() {
    std::lock_guard lock(mu_);
    fakes_.clear();
  }
  // How the next POST /stream makes its fake (items ready before the session first polls, or
  // a script). Set before the request is sent.
  void set_make_fake(std::function<std::shared_ptr<FakeAsyncResponse>()> make) {
    std::lock_guard lock(mu_);
    make_fake_ = std::move(make);
  }

  int sync_calls() const { return sync_calls_.load(); }

  // hotswap_requests_cancelled_by_client_total as rendered for /metrics.
  int64_t cancelled_by_client() const {
    const std::string text = metrics_.render(std::nullopt, ServerGauges{});
    const std::string key = "\nhotswap_requests_cancelled_by_client_total ";
    const auto at = text.find(key);
    if (at == std::string::npos) return -1;
    return std::stoll(text.substr(at + key.size()));
  }

 private:
  void add_routes() {
    router_.add("GET", "/sync", [this](const HttpRequest&, const RouteParams&) -> HandlerResult {
      ++sync_calls_;
      HttpResponse r;
      r.content_type = "text/plain";
      r.body = "hello";
      return r;
    }, BodyClass::kNone);
    router_.add("GET", "/health", [](const HttpRequest&, const RouteParams&) -> HandlerResult {
      HttpResponse r;
      r.body = "{\"status\":\"ok\"}";
      return r;
    }, BodyClass::kNone);
    router_.add("GET", "/big", [this](const HttpRequest&, const RouteParams&) -> HandlerResult {
      ++sync_calls_;
      HttpResponse r;
      r.content_type = "text/plain";
      r.body.assign(options_.big_body_bytes, 'x');
      return r;
    }, BodyClass::kNone);
    router_.add("PUT", "/upload/{name}", [](const HttpRequest& request, const RouteParams&) -> HandlerResult {
      HttpResponse r;
      r.body = std::to_string(request.body.size());
      return r;
    }, BodyClass::kUpload);
    router_.add("POST", "/stream", [this](const HttpRequest&, const RouteParams&) -> HandlerResult {
      std::shared_ptr<FakeAsyncResponse> fake;
      {
        std::lock_guard lock(mu_);
        fake = make_fake_ ? make_fake_() : std::make_shared<FakeAsyncResponse>();
        fakes_.push_back(fake);
      }
      cv_.notify_all();
      return std::shared_ptr<AsyncResponse>(fake);
    });
  }

  void do_accept() {
    namespace net = boost::asio;
    acceptor_.async_accept(net::make_strand(ioc_), [this](boost::system::error_code ec, net::ip::tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
      if (!ec) {
        if (options_.server_sndbuf > 0) {
          boost::system::error_code ignored;
          socket.set_option(net::socket_base::send_buffer_size(options_.server_sndbuf), ignored);
        }
        last_fd_ = socket.native_handle();
        start_http_session(std::move(socket), &ctx_);
        ++accepted_;  // after start: open_connections already counts it
      }
      do_accept();
    });
  }

  // Destroyed after the io_context (declared before it): sessions reference them.
  ServerConfig config_;
  Options options_;
  Router router_;
  Metrics metrics_;
  ServerState state_;
  SessionContext ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<FakeAsyncResponse>> fakes_;
  std::function<std::shared_ptr<FakeAsyncResponse>()> make_fake_;
  std::atomic<int> accepted_{0};
  std::atomic<int> last_fd_{-1};
  std::atomic<int> sync_calls_{0};

  boost::asio::io_context ioc_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{ioc_.get_executor()};
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
};

// ---- the client side ----

// A blocking loopback client on raw POSIX sockets (SO_LINGER and half-close control).
class RawClient {
 public:
  explicit RawClient(uint16_t port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  // Sends everything (blocking); false if the connection failed.
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Reads what arrives within `timeout` (at most `max` bytes) into received(); false on EOF or
  // error (eof() / error() tell which), true otherwise (also when nothing arrived).
  bool read_some(Millis timeout, std::size_t max = 1 << 16) {
    if (fd_ < 0 || eof_ || error_) return false;
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (ready <= 0) return true;
    std::string buf(std::min<std::size_t>(max, 1 << 16), '\0');
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n == 0) {
      eof_ = true;
      return false;
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) return true;
      error_ = true;
      return false;
    }
    received_.append(buf.data(), static_cast<std::size_t>(n));
    return true;
  }

  // Reads until received() holds `needle` `count` times; false at EOF, error or timeout.
  bool read_until(std::string_view needle, Millis timeout, int count = 1) {
    const auto deadline = SteadyClock::now() + timeout;
    while (occurrences(needle) < count) {
      const auto left = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now());
      if (left.count() <= 0) return false;
      if (!read_some(left)) return occurrences(needle) >= count;
    }
    return true;
  }

  // Reads until received() holds at least `n` bytes.
  bool read_at_least(std::size_t n, Millis timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    while (received_.size() < n) {
      const auto left = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now());
      if (left.count() <= 0) return false;
      if (!read_some(left, n - received_.size())) return received_.size() >= n;
    }
    return true;
  }

  // Reads until the server closes (EOF or reset); false on timeout.
  bool read_to_close(Millis timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    while (true) {
      const auto left = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now());
      if (left.count() <= 0) return false;
      if (!read_some(left)) return true;
    }
  }

  int occurrences(std::string_view needle) const {
    int n = 0;
    for (auto at = received_.find(needle); at != std::string::npos; at = received_.find(needle, at + needle.size())) ++n;
    return n;
  }

  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // FIN: an orderly close.
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // RST: SO_LINGER with a zero timeout, then close.
  void reset() {
    if (fd_ < 0) return;
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }

  const std::string& received() const { return received_; }
  bool eof() const { return eof_; }
  bool error() const { return error_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  bool error_ = false;
  std::string received_;
};

}  // namespace hotswap::server::testing
