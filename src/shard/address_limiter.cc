#include "shard/address_limiter.h"

#include <netinet/in.h>

#include <cstring>

#include "absl/hash/hash.h"

namespace shardmq::shard {

namespace {
// A rate of 0 never refuses: a huge rate and burst stand in for "none".
base::RateLimit ConnectBudget(uint32_t rate) {
  return base::RateLimit(rate ? rate : 1'000'000'000, rate ? rate : 1'000'000'000);
}
}  // namespace

AddressLimiter::AddressLimiter(const Options& options)
    : max_per_address_(options.max_per_address),
      connects_per_second_(options.connects_per_second),
      stripes_(std::make_unique<std::array<Stripe, kStripes>>()) {}

void AddressLimiter::SetOptions(const Options& options) {
  max_per_address_.store(options.max_per_address, std::memory_order_relaxed);
  connects_per_second_.store(options.connects_per_second, std::memory_order_relaxed);
}

AddressLimiter::Key AddressLimiter::KeyOf(const sockaddr_storage& addr, socklen_t len) const {
  if (!enabled()) return kNoKey;
  // Tag IPv4 in the top bits so no IPv4 key equals an IPv6 one or kNoKey.
  if (addr.ss_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
    return absl::MakeUint128(uint64_t{1} << 32, ntohl(in.sin_addr.s_addr));
  }
  if (addr.ss_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
    const uint8_t* b = in6.sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
      uint32_t v4;
      std::memcpy(&v4, b + 12, 4);
      return absl::MakeUint128(uint64_t{1} << 32, ntohl(v4));
    }
    uint64_t hi, lo;
    std::memcpy(&hi, b, 8);
    std::memcpy(&lo, b + 8, 8);
    // Only "::", never a peer's address, would equal kNoKey.
    return absl::MakeUint128(hi, lo);
  }
  return kNoKey;
}

AddressLimiter::Stripe& AddressLimiter::StripeOf(Key key) {
  return (*stripes_)[absl::Hash<Key>{}(key) % kStripes];
}

bool AddressLimiter::Idle(const Entry& entry, int64_t now_ns) const {
  return entry.open == 0 && entry.connects.Idle(now_ns);
}

void AddressLimiter::Sweep(Stripe& stripe, int64_t now_ns) {
  for (auto it = stripe.entries.begin(); it != stripe.entries.end();) {
    if (Idle(it->second, now_ns)) {
      stripe.entries.erase(it++);
    } else {
      ++it;
    }
  }
  stripe.sweep_at = std::max<size_t>(1024, 2 * stripe.entries.size());
}

AddressLimiter::Verdict AddressLimiter::Admit(Key key, int64_t now_ns) {
  Stripe& stripe = StripeOf(key);
  std::lock_guard lock(stripe.mu);
  if (stripe.entries.size() >= stripe.sweep_at) Sweep(stripe, now_ns);
  const uint32_t rate = connects_per_second_.load(std::memory_order_relaxed);
  const uint32_t max_open = max_per_address_.load(std::memory_order_relaxed);
  auto [it, added] = stripe.entries.try_emplace(key, Entry{0, ConnectBudget(rate), rate});
  Entry& entry = it->second;
  if (entry.rate != rate) {
    // The rate changed since this address was last seen (SetOptions).
    entry.connects = ConnectBudget(rate);
    entry.rate = rate;
  }
  Verdict verdict = Verdict::kAdmit;
  if (max_open != 0 && entry.open >= max_open) {
    verdict = Verdict::kTooMany;
  } else if (rate != 0 && !entry.connects.TryTake(now_ns)) {
    verdict = Verdict::kTooFast;
  } else {
    ++entry.open;
  }
  if (verdict != Verdict::kAdmit && added) stripe.entries.erase(it);
  return verdict;
}

void AddressLimiter::Release(Key key, int64_t now_ns) {
  if (key == kNoKey) return;
  Stripe& stripe = StripeOf(key);
  std::lock_guard lock(stripe.mu);
  auto it = stripe.entries.find(key);
  if (it == stripe.entries.end()) return;
  if (it->second.open > 0) --it->second.open;
  if (Idle(it->second, now_ns)) stripe.entries.erase(it);
}

size_t AddressLimiter::tracked_addresses() const {
  size_t n = 0;
  for (const Stripe& stripe : *stripes_) {
    std::lock_guard lock(stripe.mu);
    n += stripe.entries.size();
  }
  return n;
}

}  // namespace shardmq::shard
