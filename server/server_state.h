// State shared by the listener, every session and the handlers for the life of the
// server. Thread-safe: atomics and one mutex; read from every I/O thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/engine.h"
#include "engine/token_stream.h"
#include "http/connection_slots.h"

namespace hotswap::server {

enum class Phase { kLoading, kReady, kDraining };

const char* phase_name(Phase phase);  // "loading" | "ready" | "draining"

class ServerState {
 public:
  Phase phase() const { return phase_.load(std::memory_order_acquire); }
  void set_phase(Phase phase) { phase_.store(phase, std::memory_order_release); }

  // Null until the model has loaded. The engine outlives every session: the server
  // destroys it only after the I/O threads have stopped.
  Engine* engine() const { return engine_.load(std::memory_order_acquire); }
  void set_engine(Engine* engine) { engine_.store(engine, std::memory_order_release); }

  ConnectionSlots connections;  // open connections: admission and count
  std::atomic<int64_t> active_generations{0};

  // Streams of running requests, so that a drain that runs out of time can cancel them.
  void track(const std::shared_ptr<TokenStream>& stream);
  // Cancels every stream still running; returns how many.
  int cancel_all();

 private:
  std::atomic<Phase> phase_{Phase::kLoading};
  std::atomic<Engine*> engine_{nullptr};
  std::mutex mu_;
  std::vector<std::weak_ptr<TokenStream>> streams_;
};

}  // namespace hotswap::server
