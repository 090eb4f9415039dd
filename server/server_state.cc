#include "server_state.h"

#include <algorithm>

namespace hotswap::server {

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kLoading: return "loading";
    case Phase::kReady: return "ready";
    case Phase::kDraining: return "draining";
  }
  return "unknown";
}

void ServerState::track(const std::shared_ptr<TokenStream>& stream) {
  std::lock_guard lock(mu_);
  // Forget finished streams as we go so the list stays as long as the running set.
  std::erase_if(streams_, [](const std::weak_ptr<TokenStream>& w) {
    auto s = w.lock();
    return !s || s->finished();
  });
  streams_.push_back(stream);
}

int ServerState::cancel_all() {
  std::lock_guard lock(mu_);
  int cancelled = 0;
  for (const auto& w : streams_) {
    if (auto s = w.lock(); s && !s->finished()) {
      s->cancel();
      ++cancelled;
    }
  }
  return cancelled;
}

}  // namespace hotswap::server
