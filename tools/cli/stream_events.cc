#include "cli/stream_events.h"

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace hotswap::cli {

void for_each_event(TokenStream& stream, const std::function<void(TokenEvent&)>& on_event) {
  std::mutex mu;
  std::condition_variable cv;
  bool pushed = false;
  stream.set_notifier([&] {
    std::lock_guard lock(mu);
    pushed = true;
    cv.notify_all();
  });
  for (bool done = false; !done;) {
    {
      std::unique_lock lock(mu);
      // The timeout only guards against a lost wake-up; the notifier wakes us on each push.
      cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return pushed; });
      pushed = false;
    }
    for (TokenEvent& e : stream.drain()) {
      on_event(e);
      if (e.finish) done = true;
    }
  }
  stream.set_notifier(nullptr);  // the locals above end here
}

}  // namespace hotswap::cli
