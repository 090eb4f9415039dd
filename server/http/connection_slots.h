// Admission of TCP connections: a cap on open connections for the whole server and an
// optional cap per client address, so that one client cannot take every slot. A session
// holds its Slot for its whole life; the slot frees itself when the session is destroyed.
// Thread-safe: the listener acquires on its strand, sessions release on theirs.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace hotswap::server {

class ConnectionSlots {
 public:
  enum class Verdict { kAdmitted, kServerFull, kClientFull };

  // Releases its slot on destruction. Move-only; a default-constructed Slot holds nothing.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot();

   private:
    friend class ConnectionSlots;
    ConnectionSlots* owner_ = nullptr;
    std::string address_;
  };

  // max_total >= 1; max_per_client 0 means no per-client cap. *slot must be empty; on
  // kAdmitted it holds the new slot.
  Verdict try_acquire(const std::string& address, int64_t max_total, int64_t max_per_client, Slot* slot);

  int64_t open() const;
  int64_t open_from(const std::string& address) const;

 private:
  void release(const std::string& address);

  mutable std::mutex mu_;
  int64_t open_ = 0;
  std::unordered_map<std::string, int64_t> per_address_;
};

}  // namespace hotswap::server
