// The persistent-session log records and their replay
// (broker/session_records.h, broker/session_recovery.h).
#include "broker/session_records.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "broker/session_recovery.h"

namespace shardmq::broker {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string Str(absl::Span<const uint8_t> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// Builds a log as a list of records and replays it.
class Log {
 public:
  std::string& Next(uint8_t type) {
    records_.emplace_back(type, std::string());
    return records_.back().second;
  }
  void Put(const std::string& client, uint32_t expiry = 0xFFFFFFFF,
           std::optional<std::string> username = std::nullopt) {
    EncodeSessionPut(client, expiry, 4, username, 0, Next(kRecordSessionPut));
  }
  void Subscribe(const std::string& client, const std::string& filter, uint8_t qos) {
    topic::SubscriptionOptions options;
    options.qos = qos;
    EncodeSubscribe(client, filter, options, Next(kRecordSubscribe));
  }
  void Message(uint64_t body, const std::string& topic, const std::string& payload,
               std::optional<int64_t> expires = std::nullopt) {
    EncodeMessage(body, 0, topic, "publisher", 1, false, expires, nullptr, Bytes(payload),
                  Next(kRecordMessage));
  }
  void Queued(uint64_t item, uint64_t body, const std::string& client, uint8_t qos = 1) {
    EncodeQueued(item, body, client, qos, false, "", {}, Next(kRecordQueued));
  }
  void Item(uint8_t type, uint64_t item, uint16_t packet_id = 0) {
    if (type == kRecordSent) {
      EncodeSent(item, packet_id, Next(type));
    } else {
      EncodeItemOnly(item, Next(type));
    }
  }
  std::vector<RecoveredSession> Replay(int64_t now_wall, SessionReplay::Counts* counts = nullptr) {
    SessionReplay replay;
    for (const auto& [type, payload] : records_) {
      absl::Status applied = replay.Apply(type, Bytes(payload));
      EXPECT_TRUE(applied.ok()) << applied;
    }
    SessionReplay::Counts local;
    return replay.Take(now_wall, shard::Clock::now(), counts != nullptr ? *counts : local);
  }

 private:
  std::vector<std::pair<uint8_t, std::string>> records_;
};

TEST(SessionRecords, EveryTypeRoundTrips) {
  std::string out;
  EncodeSessionPut("client-1", 3600, 5, std::string("alice"), 77, out);
  absl::StatusOr<SessionRecord> r = DecodeSessionRecord(kRecordSessionPut, Bytes(out));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->client_id, "client-1");
  EXPECT_EQ(r->expiry_interval, 3600u);
  EXPECT_EQ(r->protocol_version, 5);
  ASSERT_TRUE(r->username.has_value());
  EXPECT_EQ(*r->username, "alice");
  EXPECT_EQ(r->commit, 77u);

  out.clear();
  topic::SubscriptionOptions options;
  options.qos = 2;
  options.no_local = true;
  options.retain_as_published = true;
  options.retain_handling = 2;
  options.subscription_id = 268435455;
  EncodeSubscribe("c", "a/+/#", options, out);
  r = DecodeSessionRecord(kRecordSubscribe, Bytes(out));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->filter, "a/+/#");
  EXPECT_EQ(r->options, options);

  out.clear();
  mqtt::Properties properties;
  properties.content_type = "text/plain";
  properties.user_properties.emplace_back("k", "v");
  EncodeMessage(7, 42, "t/1", "pub", 2, true, 99 * kSecond, &properties, Bytes("payload"), out);
  r = DecodeSessionRecord(kRecordMessage, Bytes(out));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, 7u);
  EXPECT_EQ(r->commit, 42u);
  EXPECT_EQ(r->message.topic, "t/1");
  EXPECT_EQ(r->message.publisher, "pub");
  EXPECT_EQ(r->message.qos, 2);
  EXPECT_TRUE(r->message.retain);
  EXPECT_EQ(r->message.expires_at_ns, 99 * kSecond);
  EXPECT_EQ(Str(r->message.payload), "payload");
  EXPECT_FALSE(r->message.properties.empty());

  out.clear();
  const uint32_t ids[] = {1, 70000};
  EncodeQueued(11, 7, "c", 1, true, "$share/g/t/#", ids, out);
  r = DecodeSessionRecord(kRecordQueued, Bytes(out));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->item, 11u);
  EXPECT_EQ(r->body, 7u);
  EXPECT_TRUE(r->retain);
  EXPECT_EQ(r->shared_group, "$share/g/t/#");
  EXPECT_EQ(r->subscription_ids, (std::vector<uint32_t>{1, 70000}));

  out.clear();
  EncodeSent(11, 65535, out);
  r = DecodeSessionRecord(kRecordSent, Bytes(out));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->packet_id, 65535);

  out.clear();
  EncodeWill("c", 5 * kSecond, "will/t", 1, false, std::nullopt, nullptr, Bytes("bye"), out);
  r = DecodeSessionRecord(kRecordWill, Bytes(out));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->wall_ns, 5 * kSecond);
  EXPECT_EQ(r->message.topic, "will/t");
  EXPECT_EQ(r->message.publisher, "c");
  EXPECT_EQ(Str(r->message.payload), "bye");
}

TEST(SessionRecords, TruncatedOrOverlongRecordsAreErrors) {
  std::string out;
  EncodeSubscribe("client", "a/b", {}, out);
  for (size_t cut = 0; cut < out.size(); ++cut) {
    EXPECT_FALSE(DecodeSessionRecord(kRecordSubscribe, Bytes(out.substr(0, cut))).ok()) << cut;
  }
  EXPECT_FALSE(DecodeSessionRecord(kRecordSubscribe, Bytes(out + "x")).ok());
  EXPECT_FALSE(DecodeSessionRecord(0x7F, Bytes(out)).ok());
}

TEST(SessionReplay, RebuildsSubscriptionsAndQueueInOrder) {
  Log log;
  log.Put("sub", 0xFFFFFFFF, "alice");
  log.Subscribe("sub", "a/#", 1);
  log.Subscribe("sub", "b/+", 2);
  log.Subscribe("sub", "gone", 0);
  EncodeUnsubscribe("sub", "gone", log.Next(kRecordUnsubscribe));
  log.Message(1, "a/x", "one");
  log.Queued(2, 1, "sub");
  log.Item(kRecordSent, 2, 17);
  log.Message(3, "a/y", "two");
  log.Queued(4, 3, "sub");
  log.Message(5, "b/z", "three");
  log.Queued(6, 5, "sub", 2);
  log.Item(kRecordSent, 6, 18);
  log.Item(kRecordReleased, 6);
  log.Message(7, "a/acked", "acked");
  log.Queued(8, 7, "sub");
  log.Item(kRecordSent, 8, 19);
  log.Item(kRecordDone, 8);
  EncodeInboundQos2("sub", 300, true, 0, log.Next(kRecordInboundQos2));
  EncodeInboundQos2("sub", 301, true, 0, log.Next(kRecordInboundQos2));
  EncodeInboundQos2("sub", 300, false, 0, log.Next(kRecordInboundQos2));

  std::vector<RecoveredSession> sessions = log.Replay(100 * kSecond);
  ASSERT_EQ(sessions.size(), 1u);
  const RecoveredSession& s = sessions[0];
  EXPECT_EQ(s.client_id, "sub");
  EXPECT_EQ(s.username, "alice");
  EXPECT_FALSE(s.offline_since_ns.has_value());  // connected when the log ended
  ASSERT_EQ(s.subscriptions.size(), 2u);
  EXPECT_EQ(s.subscriptions[0].first, "a/#");
  EXPECT_EQ(s.subscriptions[1].first, "b/+");
  EXPECT_EQ(s.subscriptions[1].second.qos, 2);
  ASSERT_EQ(s.items.size(), 3u);
  EXPECT_EQ(s.items[0].packet_id, 17);
  EXPECT_EQ(s.items[0].message->topic(), "a/x");
  EXPECT_EQ(s.items[1].packet_id, 0);  // queued, never sent
  EXPECT_EQ(Str(s.items[1].message->payload()), "two");
  EXPECT_EQ(s.items[2].packet_id, 18);
  EXPECT_TRUE(s.items[2].released);
  EXPECT_FALSE(s.items[2].message);  // only the packet id is kept
  EXPECT_EQ(s.inbound_qos2, (std::vector<uint16_t>{301}));
}

TEST(SessionReplay, OneMessageSharedByManySessions) {
  Log log;
  log.Put("s1");
  log.Put("s2");
  log.Message(1, "t", "fan-out");
  log.Queued(2, 1, "s1");
  log.Queued(3, 1, "s2");
  std::vector<RecoveredSession> sessions = log.Replay(1);
  ASSERT_EQ(sessions.size(), 2u);
  ASSERT_EQ(sessions[0].items.size(), 1u);
  ASSERT_EQ(sessions[1].items.size(), 1u);
  // One Message object for both, as when it was routed.
  EXPECT_EQ(sessions[0].items[0].message.get(), sessions[1].items[0].message.get());
}

TEST(SessionReplay, AnEndedSessionTakesItsMessagesWithIt) {
  Log log;
  log.Put("c");
  log.Subscribe("c", "t", 1);
  log.Message(1, "t", "old");
  log.Queued(2, 1, "c");
  EncodeClientOnly("c", log.Next(kRecordSessionEnd));
  // A new session under the same id starts empty.
  log.Put("c");
  log.Message(3, "t", "new");
  log.Queued(4, 3, "c");
  std::vector<RecoveredSession> sessions = log.Replay(1);
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_TRUE(sessions[0].subscriptions.empty());
  ASSERT_EQ(sessions[0].items.size(), 1u);
  EXPECT_EQ(Str(sessions[0].items[0].message->payload()), "new");
}

TEST(SessionReplay, ExpiryCountsFromWhenTheSessionWentOffline) {
  Log log;
  log.Put("short", 10);
  EncodeSessionOffline("short", 100 * kSecond, 10, log.Next(kRecordSessionOffline));
  log.Put("long", 10);
  EncodeSessionOffline("long", 100 * kSecond, 3600, log.Next(kRecordSessionOffline));
  log.Put("forever", 0xFFFFFFFF);
  EncodeSessionOffline("forever", 1, 0xFFFFFFFF, log.Next(kRecordSessionOffline));
  SessionReplay::Counts counts;
  std::vector<RecoveredSession> sessions = log.Replay(111 * kSecond, &counts);
  ASSERT_EQ(sessions.size(), 2u);
  EXPECT_EQ(sessions[0].client_id, "forever");
  EXPECT_EQ(sessions[1].client_id, "long");
  EXPECT_EQ(sessions[1].expiry_interval, 3600u);  // the DISCONNECT's value
  EXPECT_EQ(sessions[1].offline_since_ns, 100 * kSecond);
  EXPECT_EQ(counts.sessions_expired, 1u);
}

// session_records_fuzz found it: an OFFLINE time near the end of int64
// plus the expiry interval overflowed (undefined; in practice it wrapped
// negative and the session counted as expired).
TEST(SessionReplay, OfflineTimeFarInTheFutureDoesNotOverflowTheExpiry) {
  Log log;
  log.Put("future", 3600);
  EncodeSessionOffline("future", INT64_MAX - kSecond, 3600, log.Next(kRecordSessionOffline));
  SessionReplay::Counts counts;
  std::vector<RecoveredSession> sessions = log.Replay(111 * kSecond, &counts);
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].offline_since_ns, INT64_MAX - kSecond);
  EXPECT_EQ(counts.sessions_expired, 0u);
}

TEST(SessionReplay, ExpiredMessagesAreDroppedAndCounted) {
  Log log;
  log.Put("c");
  log.Message(1, "t", "stale", 50 * kSecond);
  log.Queued(2, 1, "c");
  log.Message(3, "t", "fresh", 500 * kSecond);
  log.Queued(4, 3, "c");
  SessionReplay::Counts counts;
  std::vector<RecoveredSession> sessions = log.Replay(100 * kSecond, &counts);
  ASSERT_EQ(sessions.size(), 1u);
  ASSERT_EQ(sessions[0].items.size(), 1u);
  EXPECT_EQ(Str(sessions[0].items[0].message->payload()), "fresh");
  // What is left of the interval: 400 s.
  EXPECT_EQ(sessions[0].items[0].message->RemainingExpirySeconds(shard::Clock::now()), 400u);
  EXPECT_EQ(counts.messages_expired, 1u);
}

// session_records_fuzz found it: a message expiry near either end of int64
// overflowed the time left (undefined; in practice a far-past expiry wrapped
// to a far-future one and the message was kept).
TEST(SessionReplay, MessageExpiryAtTheEndsOfInt64DoesNotOverflow) {
  Log log;
  log.Put("c");
  log.Message(1, "t", "past", INT64_MIN + 1);
  log.Queued(2, 1, "c");
  log.Message(3, "t", "future", INT64_MAX);
  log.Queued(4, 3, "c");
  SessionReplay::Counts counts;
  std::vector<RecoveredSession> sessions = log.Replay(100 * kSecond, &counts);
  ASSERT_EQ(sessions.size(), 1u);
  ASSERT_EQ(sessions[0].items.size(), 1u);
  EXPECT_EQ(Str(sessions[0].items[0].message->payload()), "future");
  EXPECT_EQ(counts.messages_expired, 1u);
}

TEST(SessionReplay, WillIsKeptUntilDone) {
  Log log;
  log.Put("w", 60);
  EncodeWill("w", 7 * kSecond, "will/t", 1, true, std::nullopt, nullptr, Bytes("bye"),
             log.Next(kRecordWill));
  log.Put("x", 60);
  EncodeWill("x", 7 * kSecond, "will/x", 0, false, std::nullopt, nullptr, Bytes("bye"),
             log.Next(kRecordWill));
  EncodeClientOnly("x", log.Next(kRecordWillDone));
  std::vector<RecoveredSession> sessions = log.Replay(1);
  ASSERT_EQ(sessions.size(), 2u);
  ASSERT_TRUE(sessions[0].will.has_value());
  EXPECT_EQ(sessions[0].will->topic, "will/t");
  EXPECT_EQ(sessions[0].will->due_wall_ns, 7 * kSecond);
  EXPECT_TRUE(sessions[0].will->retain);
  EXPECT_FALSE(sessions[1].will.has_value());
}

TEST(SessionReplay, CopiesOfUncommittedQos2MessagesAreDropped) {
  // Publisher "pub" committed origin 10 (its INBOUND QOS2 record) but not
  // 11: a crash came between the copies and the commit.
  Log log;
  log.Put("pub");
  EncodeInboundQos2("pub", 1, true, 10, log.Next(kRecordInboundQos2));
  log.Put("sub");
  for (uint64_t origin : {10, 11}) {
    EncodeMessage(origin * 100, origin, "t", "pub", 2, false, std::nullopt, nullptr,
                  Bytes("m" + std::to_string(origin)), log.Next(kRecordMessage));
    log.Queued(origin * 100 + 1, origin * 100, "sub", 2);
  }
  // A copy from a publisher whose session is gone counts as committed.
  EncodeMessage(1200, 12, "t", "gone", 2, false, std::nullopt, nullptr, Bytes("m12"),
                log.Next(kRecordMessage));
  log.Queued(1201, 1200, "sub", 2);
  std::vector<RecoveredSession> sessions = log.Replay(1);
  ASSERT_EQ(sessions.size(), 2u);
  EXPECT_EQ(sessions[0].commit_mark, 10u);
  EXPECT_EQ(DropUncommitted(sessions), 1u);
  ASSERT_EQ(sessions[1].client_id, "sub");
  ASSERT_EQ(sessions[1].items.size(), 2u);
  EXPECT_EQ(Str(sessions[1].items[0].message->payload()), "m10");
  EXPECT_EQ(Str(sessions[1].items[1].message->payload()), "m12");
  EXPECT_EQ(sessions[1].dropped_items, (std::vector<uint64_t>{1101}));
}

TEST(SessionReplay, AQueuedMessageWithoutItsBodyIsDamage) {
  // Applied by hand: Log::Replay expects every record to apply.
  SessionReplay replay;
  std::string put;
  EncodeSessionPut("c", 0xFFFFFFFF, 4, std::nullopt, 0, put);
  ASSERT_TRUE(replay.Apply(kRecordSessionPut, Bytes(put)).ok());
  std::string queued;
  EncodeQueued(2, 1, "c", 1, false, "", {}, queued);
  absl::Status status = replay.Apply(kRecordQueued, Bytes(queued));
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("does not hold"), std::string::npos) << status;
}

}  // namespace
}  // namespace shardmq::broker

namespace shardmq::broker {
namespace {

// --max-memory (spill.h): what Take keeps in memory and what it leaves in
// the log, and a snapshot's MESSAGE AT stand-in.
TEST(SessionRecords, MessageAtRoundTrips) {
  std::string out;
  EncodeMessageAt(9, 1234, 5678, 300, 4, out);
  absl::StatusOr<SessionRecord> r = DecodeSessionRecord(kRecordMessageAt, Bytes(out));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, 9u);
  EXPECT_EQ(r->segment, 1234u);
  EXPECT_EQ(r->offset, 5678u);
  EXPECT_EQ(r->length, 300u);
  EXPECT_EQ(r->stored_body, 4u);
  out.pop_back();
  EXPECT_FALSE(DecodeSessionRecord(kRecordMessageAt, Bytes(out)).ok());
}

TEST(SessionReplay, BeyondTheBudgetQueuedMessagesStayInTheLog) {
  SessionReplay replay;
  std::string out;
  auto apply = [&](uint8_t type, SpillLocation where = {}) {
    ASSERT_TRUE(replay.Apply(type, Bytes(out), where).ok());
    out.clear();
  };
  EncodeSessionPut("absent", 0xFFFFFFFF, 4, std::nullopt, 0, out);
  apply(kRecordSessionPut);
  const std::string payload(1000, 'p');
  for (uint64_t i = 1; i <= 10; ++i) {
    EncodeMessage(i, 0, "t", "pub", 1, false, std::nullopt, nullptr, Bytes(payload), out);
    apply(kRecordMessage,
          SpillLocation{.directory = 2, .segment = 100, .offset = i * 1100, .length = 1050});
    EncodeQueued(100 + i, i, "absent", 1, false, "", {}, out);
    apply(kRecordQueued);
  }
  // The first one in flight: it is resent at once, so it is never left out.
  EncodeSent(101, 7, out);
  apply(kRecordSent);
  SessionReplay::Counts counts;
  // Room for about three messages (each charged its bytes and ~160 more).
  std::vector<RecoveredSession> sessions = replay.Take(0, shard::Clock::now(), counts, 3 * 1200);
  ASSERT_EQ(sessions.size(), 1u);
  const std::vector<RecoveredItem>& items = sessions[0].items;
  ASSERT_EQ(items.size(), 10u);
  size_t in_memory = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(items[i].number, 101 + i) << "queue order kept";
    if (items[i].message) {
      ++in_memory;
      EXPECT_FALSE(items[i].spilled.has_value());
      continue;
    }
    ASSERT_TRUE(items[i].spilled.has_value());
    EXPECT_EQ(items[i].spilled->directory, 2);
    EXPECT_EQ(items[i].spilled->segment, 100u);
    EXPECT_EQ(items[i].spilled->offset, (i + 1) * 1100);
    EXPECT_EQ(items[i].spilled->length, 1050u);
    EXPECT_EQ(items[i].spilled->body, i + 1) << "the number the record carries, to check it";
  }
  EXPECT_EQ(in_memory, 3u);
  EXPECT_TRUE(items[0].message) << "in flight: kept in memory";
  EXPECT_EQ(replay.spilled(), 7u);
  // Without a budget everything is rebuilt.
  EXPECT_EQ(replay.oldest_referenced_segment(), UINT64_MAX);
}

TEST(SessionReplay, MessageAtLeavesTheMessageWhereItIs) {
  SessionReplay replay;
  std::string out;
  auto apply = [&](uint8_t type, SpillLocation where = {}) {
    ASSERT_TRUE(replay.Apply(type, Bytes(out), where).ok());
    out.clear();
  };
  EncodeSessionPut("absent", 0xFFFFFFFF, 4, std::nullopt, 0, out);
  apply(kRecordSessionPut);
  EncodeMessageAt(50, 7, 4096, 222, 3, out);
  apply(kRecordMessageAt, SpillLocation{.directory = 1});
  EncodeMessageAt(51, 4, 24, 111, 2, out);
  apply(kRecordMessageAt, SpillLocation{.directory = 1});
  EncodeQueued(60, 50, "absent", 2, true, "", {}, out);
  apply(kRecordQueued);
  EncodeQueued(61, 51, "absent", 1, false, "", {}, out);
  apply(kRecordQueued);
  EXPECT_EQ(replay.oldest_referenced_segment(), 4u) << "recovery must keep segment 4 on";
  SessionReplay::Counts counts;
  std::vector<RecoveredSession> sessions = replay.Take(0, shard::Clock::now(), counts);
  ASSERT_EQ(sessions.size(), 1u);
  ASSERT_EQ(sessions[0].items.size(), 2u);
  const RecoveredItem& first = sessions[0].items[0];
  EXPECT_FALSE(first.message);
  ASSERT_TRUE(first.spilled.has_value());
  EXPECT_EQ(first.spilled->directory, 1);
  EXPECT_EQ(first.spilled->segment, 7u);
  EXPECT_EQ(first.spilled->offset, 4096u);
  EXPECT_EQ(first.spilled->length, 222u);
  EXPECT_EQ(first.spilled->body, 3u);
  EXPECT_EQ(first.qos, 2);
  EXPECT_TRUE(first.retain);
  EXPECT_EQ(sessions[0].items[1].spilled->segment, 4u);
}

}  // namespace
}  // namespace shardmq::broker
