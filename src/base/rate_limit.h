// RateLimit: a token bucket kept as one number (the generic cell rate
// algorithm), for limits such as "N connections per second from one address"
// or "N bytes per second from one client".
//
// The state is the time at which the bucket would be full again
// (`full_at`): each event of cost c pushes it c / rate seconds later, and an
// event is within the limit while full_at stays no more than `burst / rate`
// ahead of now. So a client may send `burst` at once and `rate` per second
// after that; an idle bucket needs no timer to refill.
//
// Not thread-safe: guard it like the data it sits in. Times are nanoseconds on
// any monotonic clock.
#pragma once

#include <algorithm>
#include <cstdint>

namespace shardmq::base {

class RateLimit {
 public:
  // `rate` units per second (> 0); `burst` units may come at once (>= 1).
  RateLimit(uint64_t rate, uint64_t burst)
      : ns_per_unit_(1e9 / static_cast<double>(rate)),
        tolerance_ns_(static_cast<int64_t>(ns_per_unit_ * static_cast<double>(burst))) {}

  // Records an event of `cost` units at `now_ns` if it fits; returns whether
  // it did (a refused event takes nothing).
  bool TryTake(int64_t now_ns, uint64_t cost = 1) {
    const int64_t next = std::max(full_at_, now_ns) + Cost(cost);
    if (next - now_ns > tolerance_ns_) return false;
    full_at_ = next;
    return true;
  }

  // Records an event that already happened, fitting or not, and returns how
  // long (ns) the caller must wait before the bucket is back within its
  // burst: 0 while it still is. For traffic that was already read and can
  // only be slowed down afterwards.
  int64_t Take(int64_t now_ns, uint64_t cost) {
    full_at_ = std::max(full_at_, now_ns) + Cost(cost);
    return std::max<int64_t>(0, full_at_ - now_ns - tolerance_ns_);
  }

  // True when nothing taken is still being paid off: the bucket is as if new.
  bool Idle(int64_t now_ns) const { return full_at_ <= now_ns; }

 private:
  int64_t Cost(uint64_t units) const {
    return static_cast<int64_t>(ns_per_unit_ * static_cast<double>(units));
  }

  double ns_per_unit_;
  int64_t tolerance_ns_;
  int64_t full_at_ = 0;
};

}  // namespace shardmq::base
