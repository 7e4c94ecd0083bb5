// A client's session: what outlives one network connection (MQTT 3.1.1
// section 4.1, MQTT 5 section 4.1): subscriptions, QoS 1/2 messages in flight
// to the client, messages queued for it, and QoS 2 packet ids received from it
// and not yet released.
//
// Lifecycle and thread: a Session lives on its client id's home shard and is
// touched only by that shard's thread (no locks). It is created by the first
// CONNECT for the id, survives disconnects when the client asked for a
// persistent session, and is destroyed on a clean-session disconnect, a
// clean-start reconnect, takeover by a clean session, or when its MQTT 5
// Session Expiry Interval runs out while it is offline (lifecycle.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "base/check.h"
#include "broker/lazy_hash_set.h"
#include "broker/message.h"
#include "broker/message_queue.h"
#include "broker/spill.h"
#include "mqtt/properties.h"
#include "mqtt/protocol_version.h"
#include "shard/types.h"
#include "topic/subscriber_list.h"

namespace shardmq::broker {

struct Connection;

// One subscription as the session remembers it: the options it was granted
// with (the same the SubscriptionIndex holds).
struct SessionSubscription {
  topic::SubscriptionOptions options;
};

// A QoS 1/2 message sent to the client and not yet completed.
struct InflightMessage {
  MessageRef message;
  uint8_t qos = 1;
  // The RETAIN flag it was sent with (1 only for retained messages sent
  // because of a new subscription).
  bool retain = false;
  // QoS 2: PUBREC arrived and PUBREL was sent; only PUBCOMP is missing.
  bool released = false;
  // Send order, so unacknowledged messages are resent in their original order.
  uint64_t sequence = 0;
  // The Subscription Identifiers it was sent with, sent again on a resend.
  mqtt::SubscriptionIds subscription_ids;
  // Set when it came through a shared subscription ("$share/{group}/{filter}"):
  // if the client goes before acknowledging, another member gets it.
  std::unique_ptr<std::string> shared_group;
  // Its number in the shard's log (session_records.h), 0 when not logged.
  uint64_t log_item = 0;
  // --durability=sync, QoS 2: not sent yet, because a PUBLISH whose packet id
  // a crash could forget might reach the client twice; it goes out once its
  // records are on disk (session_store.cc).
  bool awaiting_store = false;
};

// A message waiting for an in-flight slot or for the client to come back.
struct QueuedMessage {
  // Null while the message is kept only in the log (`spilled`), and for one
  // that could not be read back from it (skipped, already logged as done).
  MessageRef message;
  uint8_t qos = 0;
  bool retain = false;
  // Being read back from the log (BrokerShard::LoadSpilled).
  bool loading = false;
  // Topic + payload bytes, what Session::queued_bytes counts.
  uint32_t bytes = 0;
  mqtt::SubscriptionIds subscription_ids;
  std::unique_ptr<std::string> shared_group;  // as in InflightMessage
  uint64_t log_item = 0;                      // as in InflightMessage
  // --max-memory: where the message is in the log while it is not in memory.
  std::shared_ptr<SpilledBody> spilled;
};

struct Session {
  explicit Session(std::string id) : client_id(std::move(id)) {}

  std::string client_id;
  // The live connection, or nullptr while the client is away.
  Connection* connection = nullptr;

  // Filter -> options, in the shard's SubscriptionIndex too.
  absl::flat_hash_map<std::string, SessionSubscription> subscriptions;

  // Outbound QoS 1/2 state, keyed by packet id.
  absl::flat_hash_map<uint16_t, InflightMessage> inflight;
  MessageQueue<QueuedMessage> queue;
  size_t queued_bytes = 0;
  uint64_t next_sequence = 0;
  uint16_t next_packet_id = 1;
  // The flags are bit-fields beside the packet id, and expiry_interval fills
  // the rest of that word, so Session is 184 bytes (GCC 12, libstdc++), in
  // mimalloc's 192-byte size class: 8 bytes more still fit, more than that
  // moves it up to the 224-byte one.
  //
  // Clean Session 0 / Session Expiry Interval > 0: keep the session when the
  // connection ends.
  bool persistent : 1 = false;
  // Its records are in the shard's log (persistent, with durability on): its
  // changes are logged until it ends or stops being persistent.
  bool logged : 1 = false;
  // --cluster-redis: offline, and what its subscriptions match goes to its
  // queue in Redis instead of `queue` (cluster_sessions.cc).
  bool parked : 1 = false;
  // MQTT 5 Session Expiry Interval in seconds as granted (3.x persistent
  // sessions: kNeverExpires); the session is destroyed this long after its
  // connection ends (BrokerShard::SessionWentOffline). A DISCONNECT may
  // change it.
  uint32_t expiry_interval = 0;
  static constexpr uint32_t kNeverExpires = 0xFFFFFFFF;

  // Inbound QoS 2: packet ids whose PUBLISH was delivered and whose PUBREL has
  // not arrived; a resent PUBLISH with one of them is not delivered again.
  // (Lazy: most sessions never receive QoS 2.)
  LazyHashSet<uint16_t> inbound_qos2;

  // Back-pressure: the publishers (client ids) this session's queue has
  // paused, each once, until the queue drains below the low watermark or the
  // session goes offline (BrokerShard::ReleaseBackpressure).
  LazyHashSet<std::string> paused_publishers;

  // A packet id not in flight, or 0 if all 65535 are (the in-flight window
  // is far smaller, so 0 means a bug upstream, and the caller queues instead).
  uint16_t AllocatePacketId() {
    for (int tries = 0; tries < 65535; ++tries) {
      uint16_t id = next_packet_id;
      next_packet_id = next_packet_id == 65535 ? 1 : next_packet_id + 1;
      if (!inflight.contains(id)) return id;
    }
    return 0;
  }
};

// A shard's sessions by client id. The key views the session's own
// client_id, which neither moves (the session is boxed) nor changes, so an
// id is stored once (a heap block per id over 15 bytes, otherwise) and a
// slot takes 24 bytes instead of 40. Sessions come in only through Add,
// which keys them by that view.
class SessionMap {
 public:
  using Map = absl::flat_hash_map<std::string_view, std::unique_ptr<Session>>;
  using iterator = Map::iterator;
  using const_iterator = Map::const_iterator;

  // `session`'s client id must not be in the map yet.
  Session& Add(std::unique_ptr<Session> session) {
    const std::string_view id = session->client_id;
    auto [it, inserted] = map_.try_emplace(id, std::move(session));
    SHARDMQ_DCHECK(inserted);
    return *it->second;
  }
  iterator find(std::string_view id) { return map_.find(id); }
  const_iterator find(std::string_view id) const { return map_.find(id); }
  bool contains(std::string_view id) const { return map_.contains(id); }
  // Destroys the session.
  size_t erase(std::string_view id) { return map_.erase(id); }
  iterator begin() { return map_.begin(); }
  iterator end() { return map_.end(); }
  const_iterator begin() const { return map_.begin(); }
  const_iterator end() const { return map_.end(); }
  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }

 private:
  Map map_;
};

}  // namespace shardmq::broker
