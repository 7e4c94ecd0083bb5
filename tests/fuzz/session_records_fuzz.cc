// Fuzzes the broker's log records (issue 9): the session records
// (broker/session_records.h) and the retained ones (broker/retained_records.h),
// one by one and as a log that recovery replays.
//
// The input is a sequence of records, each
//   selector u8 | payload length u16 LE | payload (cut short at the end)
// where the selector picks one of the 16 record types (selector % 16), so
// every mutation lands on a type the decoders know. The store's framing
// and checksums are left out: store_log_fuzz covers them, and a checksum
// would stop the fuzzer at the first byte it changes.
//
// Checked, beyond "no crash, no sanitizer report":
//  - a record that decodes re-encodes (Encode*) to bytes that decode to the
//    same fields: the round trip recovery relies on when it writes back what
//    it read (snapshots, the data-directory rewrite). A MESSAGE or WILL whose
//    property block does not decode as PUBLISH properties has no encoding to
//    compare (the encoders take mqtt::Properties) and is skipped;
//  - the session records, applied in order to a SessionReplay and then
//    Take()n, never crash whatever order, duplicates or dangling numbers
//    they come in, and every item Take returns has its message or says
//    where in the log it is (--max-memory: the budget, from the input's
//    first byte, leaves some there); likewise the retained ones through RetainedMerge and
//    RetainedMessages.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/record_codec.h"
#include "broker/retained_records.h"
#include "broker/retained_recovery.h"
#include "broker/session_records.h"
#include "broker/session_recovery.h"
#include "mqtt/properties.h"
#include "shard/timer_heap.h"

namespace {

using namespace shardmq::broker;

constexpr uint8_t kTypes[] = {
    kRecordSessionPut,  kRecordSessionOffline, kRecordSessionEnd,  kRecordSubscribe,
    kRecordUnsubscribe, kRecordMessage,        kRecordQueued,      kRecordSent,
    kRecordReleased,    kRecordDone,           kRecordInboundQos2, kRecordWill,
    kRecordWillDone,    kRecordRetainSet,      kRecordRetainClear, kRecordMessageAt,
};
constexpr size_t kTypeCount = sizeof(kTypes) / sizeof(kTypes[0]);

// A fixed "now", so that a finding reproduces: 2026-01-01 in wall-clock ns.
constexpr int64_t kNowWallNs = 1'767'225'600'000'000'000;

void Check(bool ok) {
  if (!ok) std::abort();
}

absl::Span<const uint8_t> Bytes(const std::string& s) { return records::AsBytes(s); }

bool SameBytes(absl::Span<const uint8_t> a, absl::Span<const uint8_t> b) {
  return records::AsString(a) == records::AsString(b);
}

// The property block body as mqtt::Properties, or nullopt when it is not a
// valid PUBLISH property block (no encoding of it exists to compare).
std::optional<shardmq::mqtt::Properties> Properties(absl::Span<const uint8_t> body) {
  absl::StatusOr<shardmq::mqtt::Properties> p = records::DecodePropertiesBody(body);
  if (!p.ok()) return std::nullopt;
  return *std::move(p);
}

// Both property bodies decode, to equal properties.
bool SameProperties(absl::Span<const uint8_t> a, absl::Span<const uint8_t> b) {
  std::optional<shardmq::mqtt::Properties> pa = Properties(a);
  std::optional<shardmq::mqtt::Properties> pb = Properties(b);
  return pa.has_value() && pb.has_value() && *pa == *pb;
}

bool SameMessage(const MessageRecord& a, const MessageRecord& b) {
  return a.topic == b.topic && a.publisher == b.publisher && a.qos == b.qos &&
         a.retain == b.retain && a.expires_at_ns == b.expires_at_ns &&
         SameProperties(a.properties, b.properties) && SameBytes(a.payload, b.payload);
}

// Re-encodes a decoded session record; false when it has no encoding to
// compare (properties that do not decode).
bool EncodeSession(const SessionRecord& r, std::string& out) {
  switch (r.type) {
    case kRecordSessionPut: {
      std::optional<std::string> username;
      if (r.username) username = std::string(*r.username);
      EncodeSessionPut(r.client_id, r.expiry_interval, r.protocol_version, username, r.commit, out);
      return true;
    }
    case kRecordSessionOffline:
      EncodeSessionOffline(r.client_id, r.wall_ns, r.expiry_interval, out);
      return true;
    case kRecordSessionEnd:
    case kRecordWillDone:
      EncodeClientOnly(r.client_id, out);
      return true;
    case kRecordSubscribe:
      EncodeSubscribe(r.client_id, r.filter, r.options, out);
      return true;
    case kRecordUnsubscribe:
      EncodeUnsubscribe(r.client_id, r.filter, out);
      return true;
    case kRecordMessage: {
      std::optional<shardmq::mqtt::Properties> p = Properties(r.message.properties);
      if (!p) return false;
      EncodeMessage(r.body, r.commit, r.message.topic, r.message.publisher, r.message.qos,
                    r.message.retain, r.message.expires_at_ns, &*p, r.message.payload, out);
      return true;
    }
    case kRecordQueued:
      EncodeQueued(r.item, r.body, r.client_id, r.qos, r.retain, r.shared_group, r.subscription_ids,
                   out);
      return true;
    case kRecordSent:
      EncodeSent(r.item, r.packet_id, out);
      return true;
    case kRecordMessageAt:
      EncodeMessageAt(r.body, r.segment, r.offset, r.length, r.stored_body, out);
      return true;
    case kRecordReleased:
    case kRecordDone:
      EncodeItemOnly(r.item, out);
      return true;
    case kRecordInboundQos2:
      EncodeInboundQos2(r.client_id, r.packet_id, r.added, r.commit, out);
      return true;
    case kRecordWill: {
      std::optional<shardmq::mqtt::Properties> p = Properties(r.message.properties);
      if (!p) return false;
      EncodeWill(r.client_id, r.wall_ns, r.message.topic, r.message.qos, r.message.retain,
                 r.message.expires_at_ns, &*p, r.message.payload, out);
      return true;
    }
  }
  std::abort();  // DecodeSessionRecord accepted a type it does not know
}

bool SameSession(const SessionRecord& a, const SessionRecord& b) {
  if (a.type != b.type || a.client_id != b.client_id) return false;
  switch (a.type) {
    case kRecordSessionPut:
      return a.expiry_interval == b.expiry_interval && a.protocol_version == b.protocol_version &&
             a.username == b.username;
    case kRecordSessionOffline:
      return a.wall_ns == b.wall_ns && a.expiry_interval == b.expiry_interval;
    case kRecordSessionEnd:
    case kRecordWillDone:
      return true;
    case kRecordSubscribe:
      return a.filter == b.filter && a.options == b.options;
    case kRecordUnsubscribe:
      return a.filter == b.filter;
    case kRecordMessage:
      return a.body == b.body && SameMessage(a.message, b.message);
    case kRecordQueued:
      return a.item == b.item && a.body == b.body && a.qos == b.qos && a.retain == b.retain &&
             a.shared_group == b.shared_group && a.subscription_ids == b.subscription_ids;
    case kRecordSent:
      return a.item == b.item && a.packet_id == b.packet_id;
    case kRecordMessageAt:
      return a.body == b.body && a.segment == b.segment && a.offset == b.offset &&
             a.length == b.length && a.stored_body == b.stored_body;
    case kRecordReleased:
    case kRecordDone:
      return a.item == b.item;
    case kRecordInboundQos2:
      return a.packet_id == b.packet_id && a.added == b.added;
    case kRecordWill:
      return a.wall_ns == b.wall_ns && SameMessage(a.message, b.message);
  }
  return false;
}

void RoundTripSession(const SessionRecord& first) {
  std::string encoded;
  if (!EncodeSession(first, encoded)) return;
  absl::StatusOr<SessionRecord> second = DecodeSessionRecord(first.type, Bytes(encoded));
  Check(second.ok() && SameSession(first, *second));
  // The encoding is canonical: a second round changes nothing.
  std::string again;
  Check(EncodeSession(*second, again) && again == encoded);
}

void RoundTripRetained(uint8_t type, const RetainedRecord& first) {
  std::string encoded;
  if (first.clear) {
    EncodeRetainClear(first.stamp_ns, first.topic, encoded);
  } else {
    std::optional<shardmq::mqtt::Properties> p = Properties(first.properties);
    if (!p) return;
    EncodeRetainSet(first.stamp_ns, first.topic, first.qos, first.expires_at_ns, &*p, first.payload,
                    encoded);
  }
  absl::StatusOr<RetainedRecord> second = DecodeRetained(type, Bytes(encoded));
  Check(second.ok());
  Check(second->clear == first.clear && second->stamp_ns == first.stamp_ns &&
        second->topic == first.topic);
  if (!first.clear) {
    Check(second->qos == first.qos && second->expires_at_ns == first.expires_at_ns &&
          SameProperties(second->properties, first.properties) &&
          SameBytes(second->payload, first.payload));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto in = absl::MakeConstSpan(data, size);
  // 0: no budget; else a few hundred bytes to a few hundred KiB.
  const size_t budget = size > 0 ? size_t{data[0]} * 997 : 0;
  SessionReplay replay;
  RetainedMerge merge;
  uint64_t sequence = 0;
  while (in.size() >= 3) {
    const uint8_t type = kTypes[in[0] % kTypeCount];
    const size_t length = std::min<size_t>(in[1] | (in[2] << 8), in.size() - 3);
    const auto payload = in.subspan(3, length);
    in.remove_prefix(3 + length);
    ++sequence;
    if (IsSessionRecord(type)) {
      absl::StatusOr<SessionRecord> decoded = DecodeSessionRecord(type, payload);
      // A made-up place in the log, as recovery would give it.
      const SpillLocation where{.directory = 0,
                                .segment = sequence / 8,
                                .offset = sequence * 64,
                                .length = static_cast<uint32_t>(payload.size() + 9)};
      const absl::Status applied = replay.Apply(type, payload, where);
      // Apply refuses what does not decode (and, beyond that, a QUEUED
      // naming a MESSAGE it has not seen, changing nothing: replay goes on).
      Check(decoded.ok() || !applied.ok());
      if (decoded.ok()) RoundTripSession(*decoded);
    } else {
      absl::StatusOr<RetainedRecord> decoded = DecodeRetained(type, payload);
      if (decoded.ok()) {
        RoundTripRetained(type, *decoded);
        merge.Add(*decoded, sequence);
      }
    }
  }
  const auto now = shardmq::shard::Clock::now();
  SessionReplay::Counts counts;
  std::vector<RecoveredSession> sessions = replay.Take(kNowWallNs, now, counts, budget);
  for (const RecoveredSession& s : sessions) {
    for (const RecoveredItem& item : s.items) {
      Check(item.message || item.released || item.spilled.has_value());
      Check(!(item.message && item.spilled.has_value()));
    }
  }
  size_t expired = 0;
  std::vector<RecoveredRetained> retained = merge.Take(kNowWallNs, &expired);
  std::vector<MessageRef> messages = RetainedMessages(retained, kNowWallNs, now);
  return 0;
}
