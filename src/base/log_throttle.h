// SHARDMQ_LOG_THROTTLED: a log line for events a client can cause at will
// (a limit hit, a refused connection), written at most once per second per
// call site, with a count of the ones left out. A flood of bad clients then
// costs the log one line a second instead of one per attempt.
//
// Example:
//   SHARDMQ_LOG_THROTTLED(kWarning, "refused %s: too many connections", peer);
//   -> "refused 10.0.0.7:4711: too many connections (and 5312 more like it since
//       the last such line)"
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "base/log.h"

namespace shardmq::base {

// One call site's state; thread-safe (the shards share a call site).
class LogThrottle {
 public:
  // True if a line may be written now; then `*skipped` is how many were
  // refused since the last one. Otherwise the event is counted.
  bool Allow(uint64_t* skipped);

 private:
  std::atomic<int64_t> next_ns_{0};
  std::atomic<uint64_t> skipped_{0};
};

// Writes `message`, followed by the skipped count when there is one.
void WriteThrottledLine(LogLevel level, std::string message, uint64_t skipped);

}  // namespace shardmq::base

#define SHARDMQ_LOG_THROTTLED(level, ...)                                                       \
  do {                                                                                          \
    static ::shardmq::base::LogThrottle shardmq_log_throttle;                                   \
    uint64_t shardmq_log_skipped = 0;                                                           \
    if (::shardmq::base::LogLevel::level >= ::shardmq::base::GetLogLevel() &&                   \
        shardmq_log_throttle.Allow(&shardmq_log_skipped)) {                                     \
      ::shardmq::base::WriteThrottledLine(::shardmq::base::LogLevel::level,                     \
                                          ::absl::StrFormat(__VA_ARGS__), shardmq_log_skipped); \
    }                                                                                           \
  } while (0)
