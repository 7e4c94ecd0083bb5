// SubscriberList: the subscriptions on one filter (or one shared group) of one
// shard: at most one entry per subscriber, found in O(1) once the list is
// long (a "broadcast/#" filter can have every client of the shard on it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"

namespace shardmq::topic {

// Opaque handle the broker picks for a subscriber (a session id or pointer).
using SubscriberId = uint64_t;

// The options a SUBSCRIBE sets per filter (MQTT 5 section 3.8.3.1). MQTT 3.x
// subscribers use only `qos`.
struct SubscriptionOptions {
  uint8_t qos = 0;        // Maximum QoS, 0-2.
  bool no_local = false;  // Do not send the subscriber its own messages.
  bool retain_as_published = false;
  uint8_t retain_handling = 0;   // 0: send retained on subscribe, 1: only if new, 2: never.
  uint32_t subscription_id = 0;  // Subscription Identifier; 0 = none.

  friend bool operator==(const SubscriptionOptions&, const SubscriptionOptions&) = default;
};

struct Subscription {
  SubscriberId subscriber;
  SubscriptionOptions options;
};

// Lifecycle: lives inside a SubscriptionIndex tree node.
// Concurrency: owned by one shard thread; no locking.
// Order is not kept: Remove moves the last entry into the hole.
class SubscriberList {
 public:
  // Inserts or replaces the entry for `subscriber`. Returns true if replaced.
  bool Upsert(SubscriberId subscriber, const SubscriptionOptions& options);
  // Removes the entry for `subscriber`. Returns true if it was there.
  bool Remove(SubscriberId subscriber);
  const Subscription* Find(SubscriberId subscriber) const;

  absl::Span<const Subscription> entries() const { return {items_.data(), items_.size()}; }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }

 private:
  // Past this many entries, a map from subscriber to position replaces the
  // linear search, so churn on a crowded filter stays O(1).
  static constexpr size_t kIndexThreshold = 16;

  size_t IndexOf(SubscriberId subscriber) const;  // size() if absent.

  absl::InlinedVector<Subscription, 1> items_;
  std::unique_ptr<absl::flat_hash_map<SubscriberId, uint32_t>> positions_;
};

}  // namespace shardmq::topic
