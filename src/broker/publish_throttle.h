// PublishThrottle: one client's publish rate limits (Limits::max_publish_rate
// and max_publish_bytes_rate, or its own from an authentication hook).
//
// Each PUBLISH is counted as it is decoded; once the client is past its
// burst the broker stops decoding its input (keeping what was already read)
// and stops reading from its socket for as long as it takes to be back within
// the rate (BrokerShard::ThrottlePublisher). The client then slows down
// through TCP flow control and keeps its connection; nothing is dropped.
// Only a client that stays over its rate for 10 s on end, or whose input
// outruns the pause by more than a packet and 256 KiB, is disconnected.
//
// Lives in its Connection (only when a limit applies); shard thread only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "base/rate_limit.h"
#include "shard/types.h"
#include "shardmq/hooks.h"

namespace shardmq::broker {

struct PublishThrottle {
  explicit PublishThrottle(const ClientLimits& limits) : limits(limits) {
    if (limits.publish_rate != 0) messages.emplace(limits.publish_rate, limits.publish_rate);
    if (limits.publish_bytes_rate != 0) {
      bytes.emplace(limits.publish_bytes_rate, limits.publish_bytes_rate);
    }
  }
  static bool Applies(const ClientLimits& limits) {
    return limits.publish_rate != 0 || limits.publish_bytes_rate != 0;
  }

  // Counts one PUBLISH of `size` topic + payload bytes at `now_ns`; returns
  // how long (ns) reading must stop to be within both rates again, 0 if it
  // need not.
  int64_t Count(int64_t now_ns, uint64_t size) {
    int64_t wait = 0;
    if (messages) wait = std::max(wait, messages->Take(now_ns, 1));
    if (bytes) wait = std::max(wait, bytes->Take(now_ns, size));
    return wait;
  }

  ClientLimits limits;
  std::optional<base::RateLimit> messages;
  std::optional<base::RateLimit> bytes;
  // A client over its rate this long without a second's break is not
  // slowing down (or is gone, its unread flood still in the socket): it is
  // disconnected (MQTT 5: DISCONNECT 0x96, message rate too high).
  static constexpr int64_t kMaxThrottledNs = 10'000'000'000;
  static constexpr int64_t kBreakNs = 1'000'000'000;
  // When the current run of throttling began, and the last pause ended.
  int64_t throttled_since_ns = 0;
  int64_t last_end_ns = 0;
  // Starts or continues a run of throttling; false once it has lasted too long.
  bool NoteThrottled(int64_t now_ns) {
    if (throttled_since_ns == 0 || now_ns - last_end_ns > kBreakNs) throttled_since_ns = now_ns;
    return now_ns - throttled_since_ns <= kMaxThrottledNs;
  }
  // Set while this throttle holds the connection's reading.
  bool holding = false;
  // Input read but not yet decoded while holding: the rest of the chunk in
  // which the client went over, and chunks the kernel had already read.
  std::string backlog;
  shard::TimerId resume_timer;
};

}  // namespace shardmq::broker
