#include "server.h"

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include "engine/attention_choice.h"
#include "engine/engine.h"
#include "handlers/handler_context.h"
#include "http/listener.h"
#include "engine/demo_model.h"
#include "routes.h"

namespace hotswap::server {
namespace {

namespace net = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Signals seen, shared between the signal handler (an I/O thread) and run().
class SignalLatch {
 public:
  void raise() {
    {
      std::lock_guard lock(mu_);
      ++count_;
    }
    cv_.notify_all();
  }
  int count() {
    std::lock_guard lock(mu_);
    return count_;
  }
  void wait_first() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return count_ > 0; });
  }
  // Waits up to `timeout` for the count to exceed `seen`; true if it did.
  bool wait_more(int seen, milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return count_ > seen; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

}  // namespace

Server::Server(ServerConfig config) : config_(std::move(config)) {}

int Server::run() {
  std::string attention_error;
  if (!parse_attention_choice(config_.default_attention, &config_.engine.default_attention, &attention_error)) {
    spdlog::error("event=bad_config key=default_attention error=\"{}\"", attention_error);
    return 2;
  }

  // Declared before the I/O objects so it is destroyed after them: sessions still hold
  // streams and a pointer to it until the io_context is gone.
  std::unique_ptr<Engine> engine;

  const HandlerContext handler_context{&config_, &state_, &metrics_};
  const Router router = build_routes(&handler_context);
  const SessionContext session_context{&config_, &router, &metrics_, &state_};

  std::optional<net::io_context> ioc(std::in_place, config_.io_threads);
  auto work = net::make_work_guard(*ioc);
  boost::system::error_code ec;
  auto listener = std::make_shared<Listener>(*ioc, &session_context, config_.host, static_cast<uint16_t>(config_.port), &ec);
  if (ec) {
    spdlog::error("event=listen_failed host={} port={} error=\"{}\"", config_.host, config_.port, ec.message());
    return 1;
  }
  listener->start();
  // The one machine-readable line on stdout: scripts and tests read the port from it.
  std::printf("listening on http://%s:%u\n", config_.host.c_str(), static_cast<unsigned>(listener->port()));
  std::fflush(stdout);
  spdlog::info("event=listening url=http://{}:{} io_threads={}", config_.host, listener->port(), config_.io_threads);

  SignalLatch signals_seen;
  std::optional<net::signal_set> signals(std::in_place, *ioc, SIGINT, SIGTERM);
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& e, int signo) {
    if (e) return;
    // New requests get 503 from this moment; run() does the rest of the drain.
    state_.set_phase(Phase::kDraining);
    spdlog::info("event=signal signal={} action={}", signo == SIGTERM ? "SIGTERM" : "SIGINT",
                 signals_seen.count() == 0 ? "drain" : "stop_now");
    signals_seen.raise();
    signals->async_wait(on_signal);
  };
  signals->async_wait(on_signal);

  std::vector<std::thread> io_threads;
  for (int i = 0; i < config_.io_threads; ++i) io_threads.emplace_back([&] { ioc->run(); });
  auto stop_io = [&] {
    listener->stop();
    work.reset();
    ioc->stop();
    for (std::thread& t : io_threads) t.join();
    listener.reset();
    signals.reset();
    ioc.reset();  // destroys the sessions (cancelling their streams) while the engine still exists
  };

  try {
    EngineConfig engine_config = config_.engine;
    engine_config.model_dir = config_.model_dir.empty() ? ensure_demo_model(resolved_cache_dir(config_)) : config_.model_dir;
    engine_config.adapter_dir = config_.adapter_dir;
    engine_config.cache_dir = resolved_cache_dir(config_);
    spdlog::info("event=model_loading model_dir={}", engine_config.model_dir);
    const auto load_started = Clock::now();
    engine = Engine::create(engine_config);
    const ModelInfo& info = engine->model_info();
    spdlog::info("event=model_loaded model={} type={} vocab={} context={} chat_template={} load_ms={}", info.id, info.model_type,
                 info.vocab_size, info.max_position_embeddings, info.chat_template.empty() ? "no" : "yes",
                 std::chrono::duration_cast<milliseconds>(Clock::now() - load_started).count());
  } catch (const std::exception& e) {
    spdlog::error("event=model_load_failed error=\"{}\"", e.what());
    stop_io();
    return 1;
  }
  // The served name is settled once, before the engine is published (set_engine releases it
  // to the handlers, which read it only once they see the engine or the ready phase).
  if (config_.served_model_name.empty()) config_.served_model_name = engine->model_info().id;
  state_.set_engine(engine.get());
  if (signals_seen.count() == 0) {
    state_.set_phase(Phase::kReady);
    spdlog::info("event=ready");
  }

  signals_seen.wait_first();
  state_.set_phase(Phase::kDraining);
  engine->drain();
  const int drain_ms = config_.timeouts.drain_ms;
  spdlog::info("event=draining active_generations={} timeout_ms={}", state_.active_generations.load(), drain_ms);
  // Running requests finish and their last bytes are written, until the deadline or a second signal.
  const auto deadline = Clock::now() + milliseconds(drain_ms);
  while (state_.active_generations.load() > 0 && Clock::now() < deadline) {
    if (signals_seen.wait_more(1, milliseconds(20))) break;
  }
  if (state_.active_generations.load() > 0) {
    const int cancelled = state_.cancel_all();
    spdlog::warn("event=drain_timeout cancelled={} active_generations={}", cancelled, state_.active_generations.load());
    const auto grace = Clock::now() + milliseconds(2000);
    while (state_.active_generations.load() > 0 && Clock::now() < grace) std::this_thread::sleep_for(milliseconds(10));
  }
  // No engine pushes (and so no wake-ups) may race with tearing the sessions down.
  engine->wait_idle(2000);
  stop_io();
  spdlog::info("event=stopped");
  return 0;
}

}  // namespace hotswap::server
