// Rebuilding persistent sessions from a shard directory's session records
// (session_records.h) at start-up, before any shard serves.
//
// Records are applied in log order; the result is each session as it was
// when the log ended: subscriptions, the messages queued or in flight for it
// (with packet ids and QoS 2 state), the QoS 2 packet ids it sent and has not
// released, and a will waiting out its delay. Sessions whose expiry ran out
// while the broker was down, and messages whose Message Expiry Interval
// passed, are dropped (counted). A session that was connected when the log
// ended (the broker crashed or was stopped under it) is taken to have gone
// offline at recovery.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "broker/message.h"
#include "broker/session_records.h"

namespace shardmq::broker {

// Where a MESSAGE record is in a shard's log: a message kept only there
// (--max-memory) is read back from it when its session's client returns.
struct SpillLocation {
  int directory = 0;     // shard-N
  uint64_t segment = 0;  // the segment file's first sequence (its name)
  uint64_t offset = 0;   // the record's first byte in it
  uint32_t length = 0;   // framed bytes
  uint64_t body = 0;     // the MESSAGE record's body number, to check it
};

// A message a session held when the log ended.
struct RecoveredItem {
  // Null for a released QoS 2 message: only its packet id is still needed;
  // and for one kept only in the log (then `spilled` says where).
  MessageRef message;
  std::optional<SpillLocation> spilled;
  uint8_t qos = 1;
  bool retain = false;
  std::string shared_group;
  std::vector<uint32_t> subscription_ids;
  uint16_t packet_id = 0;  // 0: queued, not yet sent
  bool released = false;
  // Its number in the log it came from (QUEUED's item).
  uint64_t number = 0;
};

struct RecoveredWill {
  std::string topic;
  std::string properties;  // property block body
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  int64_t due_wall_ns = 0;
};

struct RecoveredSession {
  std::string client_id;
  uint32_t expiry_interval = 0;
  uint8_t protocol_version = 4;
  std::optional<std::string> username;
  // When its connection ended (wall clock); nullopt: it was connected when
  // the log ended.
  std::optional<int64_t> offline_since_ns;
  std::vector<std::pair<std::string, topic::SubscriptionOptions>> subscriptions;
  // In the order they were queued: in-flight ones are resent in this order,
  // queued ones follow.
  std::vector<RecoveredItem> items;
  std::vector<uint16_t> inbound_qos2;
  std::optional<RecoveredWill> will;
  // QoS 2 messages it published under --durability=sync whose origin is at
  // most this are committed (session_records.h).
  uint64_t commit_mark = 0;
  // Items DropUncommitted took out: the shard logs them as done before it
  // serves, so a later commit mark cannot bring them back.
  std::vector<uint64_t> dropped_items;
};

// Drops the copies of QoS 2 messages whose publisher's session is there and
// never committed them (origin above its commit mark): the publisher sends
// them again. Returns how many were dropped.
size_t DropUncommitted(std::vector<RecoveredSession>& sessions);

// The properties a message out of a MESSAGE record is forwarded with: its
// property block (kept without it if that does not decode: a bug or a
// newer format, and the message is worth more than its properties) and
// what is left of its Message Expiry Interval at `now_wall_ns`, in whole
// seconds rounded up; nullopt when that has run out.
std::optional<mqtt::Properties> ForwardedProperties(const MessageRecord& record,
                                                    int64_t now_wall_ns);

// A message out of a MESSAGE or RETAIN SET record, with what is left of its
// Message Expiry Interval; null when that has run out.
// `origin`: Message::origin().
MessageRef RebuildMessage(const MessageRecord& record, int64_t now_wall_ns,
                          shard::Clock::time_point now, uint64_t origin = 0);

// Applies one shard directory's session records in order.
class SessionReplay {
 public:
  // `salvage`: records that need a record the damage took (a QUEUED whose
  // MESSAGE is gone) are skipped and counted instead of being an error.
  explicit SessionReplay(bool salvage = false) : salvage_(salvage) {}

  // An error is a record that does not decode (DecodeSessionRecord's).
  // `where`: the record's place in the log (directory, segment, offset and
  // framed length), so a MESSAGE can be left there by Take.
  absl::Status Apply(uint8_t type, absl::Span<const uint8_t> payload,
                     const SpillLocation& where = {});

  struct Counts {
    size_t sessions_expired = 0;
    size_t messages_expired = 0;
  };
  // The sessions as the log left them, minus expired ones (counted into
  // `counts`). `max_number` gets the largest body or item number seen.
  // `memory_budget` (--max-memory's share of one shard; 0: none): once the
  // messages rebuilt take that many bytes, further ones stay in the log
  // (RecoveredItem::spilled), as do those a snapshot left there.
  std::vector<RecoveredSession> Take(int64_t now_wall_ns, shard::Clock::time_point now,
                                     Counts& counts, size_t memory_budget = 0);
  // The oldest segment a MESSAGE AT refers to (UINT64_MAX: none): recovery
  // must keep it and those after it.
  uint64_t oldest_referenced_segment() const { return oldest_referenced_segment_; }
  // Messages Take left in the log.
  size_t spilled() const { return spilled_; }
  uint64_t max_number() const { return max_number_; }
  // With salvage: records skipped because what they refer to was lost.
  size_t salvage_skipped() const { return salvage_skipped_; }

 private:
  struct Session {
    RecoveredSession state;
    absl::flat_hash_map<std::string, topic::SubscriptionOptions> subscriptions;
    absl::flat_hash_set<uint16_t> inbound_qos2;
    absl::flat_hash_set<uint64_t> items;
  };
  // A MESSAGE record's contents, owned; several items may share one.
  // Turned into a Message only by Take, which dates its expiry.
  struct Body {
    std::string topic, publisher, properties, payload;
    uint8_t qos = 0;
    bool retain = false;
    std::optional<int64_t> expires_at_ns;
    uint64_t origin = 0;
    SpillLocation where;  // where the MESSAGE record is
    // A MESSAGE AT's: the record is elsewhere and its bytes were not read.
    bool only_in_log = false;
  };
  struct Item {
    std::string client_id;
    uint64_t number = 0;
    RecoveredItem item;  // without its message
    std::shared_ptr<const Body> body;
  };
  Session* Find(std::string_view client_id);
  void EndSession(std::string_view client_id);

  absl::flat_hash_map<std::string, Session> sessions_;
  absl::flat_hash_map<uint64_t, Item> items_;
  // Bodies by number. Bounded by the log since the last snapshot, which
  // compaction keeps small.
  absl::flat_hash_map<uint64_t, std::shared_ptr<const Body>> bodies_;
  uint64_t max_number_ = 0;
  uint64_t oldest_referenced_segment_ = UINT64_MAX;
  size_t spilled_ = 0;
  bool salvage_ = false;
  size_t salvage_skipped_ = 0;
};

}  // namespace shardmq::broker
