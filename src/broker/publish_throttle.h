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
  // `limits`: in force now; `own`: the values a hook set for this client
  // (0 where it left the global value as it found it), see Effective.
  PublishThrottle(const ClientLimits& limits, const ClientLimits& own) : own(own) {
    SetLimits(limits);
  }
  static bool Applies(const ClientLimits& limits) {
    return limits.publish_rate != 0 || limits.publish_bytes_rate != 0;
  }

  // The values a hook chose, field by field: those it changed from the
  // global ones it was handed (ConnectRequest::limits); 0 where it left
  // one as it found it (no opinion: the client follows the global value).
  static ClientLimits OwnOf(const ClientLimits& decided, const ClientLimits& global) {
    return {
        decided.publish_rate != global.publish_rate ? decided.publish_rate : 0,
        decided.publish_bytes_rate != global.publish_bytes_rate ? decided.publish_bytes_rate : 0};
  }
  // A client's limits after the global ones changed at run time: a hook's
  // own value tightens the new global one and never loosens it (0: none).
  static ClientLimits Effective(const ClientLimits& own, const ClientLimits& global) {
    auto tighter = [](uint64_t a, uint64_t b) { return a == 0 ? b : b == 0 ? a : std::min(a, b); };
    return {static_cast<uint32_t>(tighter(own.publish_rate, global.publish_rate)),
            tighter(own.publish_bytes_rate, global.publish_bytes_rate)};
  }

  // New rates; a changed one starts a fresh budget (a second's burst).
  void SetLimits(const ClientLimits& next) {
    if (next.publish_rate != limits.publish_rate || !messages.has_value()) {
      messages.reset();
      if (next.publish_rate != 0) messages.emplace(next.publish_rate, next.publish_rate);
    }
    if (next.publish_bytes_rate != limits.publish_bytes_rate || !bytes.has_value()) {
      bytes.reset();
      if (next.publish_bytes_rate != 0) {
        bytes.emplace(next.publish_bytes_rate, next.publish_bytes_rate);
      }
    }
    limits = next;
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
  ClientLimits own;
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
