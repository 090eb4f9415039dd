#include "http/connection_slots.h"

#include <utility>

namespace hotswap::server {

ConnectionSlots::Slot::Slot(Slot&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), address_(std::move(other.address_)) {}

ConnectionSlots::Slot& ConnectionSlots::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (owner_) owner_->release(address_);
    owner_ = std::exchange(other.owner_, nullptr);
    address_ = std::move(other.address_);
  }
  return *this;
}

ConnectionSlots::Slot::~Slot() {
  if (owner_) owner_->release(address_);
}

ConnectionSlots::Verdict ConnectionSlots::try_acquire(const std::string& address, int64_t max_total,
                                                      int64_t max_per_client, Slot* slot) {
  std::lock_guard lock(mu_);
  if (open_ >= max_total) return Verdict::kServerFull;
  int64_t& mine = per_address_[address];
  if (max_per_client > 0 && mine >= max_per_client) {
    if (mine == 0) per_address_.erase(address);
    return Verdict::kClientFull;
  }
  ++mine;
  ++open_;
  slot->owner_ = this;  // *slot is empty (the contract), so nothing is released here under mu_
  slot->address_ = address;
  return Verdict::kAdmitted;
}

void ConnectionSlots::release(const std::string& address) {
  std::lock_guard lock(mu_);
  --open_;
  auto it = per_address_.find(address);
  if (it != per_address_.end() && --it->second <= 0) per_address_.erase(it);
}

int64_t ConnectionSlots::open() const {
  std::lock_guard lock(mu_);
  return open_;
}

int64_t ConnectionSlots::open_from(const std::string& address) const {
  std::lock_guard lock(mu_);
  auto it = per_address_.find(address);
  return it == per_address_.end() ? 0 : it->second;
}

}  // namespace hotswap::server
