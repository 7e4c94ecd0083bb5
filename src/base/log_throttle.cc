#include "base/log_throttle.h"

#include <time.h>

#include <utility>

namespace shardmq::base {
namespace {

constexpr int64_t kIntervalNs = 1'000'000'000;

int64_t MonotonicNs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

}  // namespace

bool LogThrottle::Allow(uint64_t* skipped) {
  const int64_t now = MonotonicNs();
  int64_t next = next_ns_.load(std::memory_order_relaxed);
  // One thread wins the slot; the others count themselves as skipped.
  if (now < next ||
      !next_ns_.compare_exchange_strong(next, now + kIntervalNs, std::memory_order_relaxed)) {
    skipped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  *skipped = skipped_.exchange(0, std::memory_order_relaxed);
  return true;
}

void WriteThrottledLine(LogLevel level, std::string message, uint64_t skipped) {
  if (skipped > 0) {
    message += absl::StrFormat(" (and %d more like it since the last such line)", skipped);
  }
  WriteLogLine(level, message);
}

}  // namespace shardmq::base
