// The log records of persistent sessions (issue 9; README "Durable state").
//
// A session is logged by its home shard while it is persistent (Clean
// Session 0 / Session Expiry Interval > 0); its records say what changed:
//
//   SESSION PUT     = client | expiry interval u32 | protocol version u8 |
//                     has user name u8 | user name (the ACL judges deliveries
//                     to the session by it while it is offline) |
//                     commit mark u64
//   SESSION OFFLINE = client | wall-clock ns i64 when its connection ended |
//                     expiry interval u32 (a DISCONNECT may have changed it)
//   SESSION END     = client
//   SUBSCRIBE       = client | filter | QoS u8 | option bits u8 | subscription id u32
//   UNSUBSCRIBE     = client | filter
//   MESSAGE         = body u64 | origin u64 | QoS u8 | flags u8 |
//                     [expiry wall ns i64] | topic | publisher | properties |
//                     payload (the rest)
//   QUEUED          = item u64 | body u64 | client | QoS u8 | flags u8 |
//                     shared group | id count u16 | subscription ids u32...
//   SENT            = item u64 | packet id u16
//   RELEASED        = item u64   (QoS 2: PUBREC came, PUBREL sent)
//   DONE            = item u64   (acknowledged, expired or given away)
//   INBOUND QOS2    = client | packet id u16 | 1 added / 0 released |
//                     commit number u64 (added: the message's origin, or 0)
//   WILL            = client | due wall ns i64 | QoS u8 | flags u8 | topic |
//                     properties | payload (the rest)
//   WILL DONE       = client
//   MESSAGE AT      = body u64 | segment u64 | offset u64 | length u32 |
//                     stored body u64
//                     (a snapshot's stand-in for a MESSAGE that lives only
//                     in an older segment, --max-memory: the MESSAGE record
//                     numbered `stored body` is `length` framed bytes at
//                     `offset` of the segment named `segment`; that segment
//                     is kept while anything refers to it)
// Strings ("client", "filter", ...) are a u32 length and the bytes; integers
// little-endian. A MESSAGE is logged once per shard however many sessions
// queue it (fan-out); QUEUED names it by `body`, a number unique in the
// shard's log, and gives the copy for one session its own `item` number, by
// which the copy's later records find it. Items and bodies of a session that
// ended, and bodies no item needs, are simply not rebuilt by recovery.
//
// Commit of a QoS 2 PUBLISH under --durability=sync (durable_acks.cc): its
// copies are logged on each subscriber's shard with the message's `origin`
// (a number from the publisher's shard), and the publisher's INBOUND QOS2
// record, carrying the same number, is appended only once every copy is on
// disk; it raises the publisher session's commit mark. Recovery drops a copy
// whose origin is above its publisher's mark (session_recovery.h): the
// PUBREC was never sent, the client sends the PUBLISH again, and routing it
// again must not make a second copy. A session's mark starts at the number
// in use when it was created, so copies from before it count as committed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "mqtt/properties.h"
#include "topic/subscriber_list.h"

namespace shardmq::broker {

inline constexpr uint8_t kRecordSessionPut = 0x20;
inline constexpr uint8_t kRecordSessionOffline = 0x21;
inline constexpr uint8_t kRecordSessionEnd = 0x22;
inline constexpr uint8_t kRecordSubscribe = 0x23;
inline constexpr uint8_t kRecordUnsubscribe = 0x24;
inline constexpr uint8_t kRecordMessage = 0x25;
inline constexpr uint8_t kRecordQueued = 0x26;
inline constexpr uint8_t kRecordSent = 0x27;
inline constexpr uint8_t kRecordReleased = 0x28;
inline constexpr uint8_t kRecordDone = 0x29;
inline constexpr uint8_t kRecordInboundQos2 = 0x2A;
inline constexpr uint8_t kRecordWill = 0x2B;
inline constexpr uint8_t kRecordWillDone = 0x2C;
inline constexpr uint8_t kRecordMessageAt = 0x2D;

inline bool IsSessionRecord(uint8_t type) {
  return type >= kRecordSessionPut && type <= kRecordMessageAt;
}

// An application message as a MESSAGE or WILL record holds it (views).
struct MessageRecord {
  std::string_view topic;
  std::string_view publisher;
  uint8_t qos = 0;
  bool retain = false;
  std::optional<int64_t> expires_at_ns;  // wall clock
  absl::Span<const uint8_t> properties;  // property block body
  absl::Span<const uint8_t> payload;
};

// One decoded session record; which fields are set depends on `type`.
// Views into the record's payload, which must outlive it.
struct SessionRecord {
  uint8_t type = 0;
  std::string_view client_id;
  uint32_t expiry_interval = 0;
  uint8_t protocol_version = 0;
  std::optional<std::string_view> username;
  int64_t wall_ns = 0;  // OFFLINE: when; WILL: when due
  std::string_view filter;
  topic::SubscriptionOptions options;
  uint64_t body = 0;
  uint64_t item = 0;
  uint8_t qos = 0;
  bool retain = false;
  std::string_view shared_group;
  std::vector<uint32_t> subscription_ids;
  uint16_t packet_id = 0;
  bool added = false;  // INBOUND QOS2
  // SESSION PUT: the commit mark; INBOUND QOS2: the commit number;
  // MESSAGE: the origin.
  uint64_t commit = 0;
  MessageRecord message;  // MESSAGE, WILL
  // MESSAGE AT: where the MESSAGE record is, and the number it has there.
  uint64_t segment = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
  uint64_t stored_body = 0;
};

void EncodeSessionPut(std::string_view client_id, uint32_t expiry_interval,
                      uint8_t protocol_version, const std::optional<std::string>& username,
                      uint64_t commit_mark, std::string& out);
void EncodeSessionOffline(std::string_view client_id, int64_t wall_ns, uint32_t expiry_interval,
                          std::string& out);
// SESSION END and WILL DONE.
void EncodeClientOnly(std::string_view client_id, std::string& out);
void EncodeSubscribe(std::string_view client_id, std::string_view filter,
                     const topic::SubscriptionOptions& options, std::string& out);
void EncodeUnsubscribe(std::string_view client_id, std::string_view filter, std::string& out);
// MESSAGE: `properties` may be nullptr.
void EncodeMessage(uint64_t body, uint64_t origin, std::string_view topic,
                   std::string_view publisher, uint8_t qos, bool retain,
                   std::optional<int64_t> expires_at_ns, const mqtt::Properties* properties,
                   absl::Span<const uint8_t> payload, std::string& out);
void EncodeQueued(uint64_t item, uint64_t body, std::string_view client_id, uint8_t qos,
                  bool retain, std::string_view shared_group,
                  absl::Span<const uint32_t> subscription_ids, std::string& out);
void EncodeSent(uint64_t item, uint16_t packet_id, std::string& out);
void EncodeMessageAt(uint64_t body, uint64_t segment, uint64_t offset, uint32_t length,
                     uint64_t stored_body, std::string& out);
// RELEASED and DONE.
void EncodeItemOnly(uint64_t item, std::string& out);
void EncodeInboundQos2(std::string_view client_id, uint16_t packet_id, bool added,
                       uint64_t commit_number, std::string& out);
void EncodeWill(std::string_view client_id, int64_t due_wall_ns, std::string_view topic,
                uint8_t qos, bool retain, std::optional<int64_t> expires_at_ns,
                const mqtt::Properties* properties, absl::Span<const uint8_t> payload,
                std::string& out);

// Decodes a record whose type IsSessionRecord; an error says what is wrong
// (a checksummed record that does not parse is a bug or a newer format).
absl::StatusOr<SessionRecord> DecodeSessionRecord(uint8_t type, absl::Span<const uint8_t> payload);

}  // namespace shardmq::broker
