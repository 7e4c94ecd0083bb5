// Routing and delivery: from one Message to every matching subscriber on this
// shard and to the other shards that have one (DESIGN.md, steps 4 and 5), and
// the per-session QoS flow: in-flight window, queue, resend.
#include <algorithm>
#include <cstring>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/string_view.h"
#include "base/log_throttle.h"
#include "broker/broker_shard.h"
#include "broker/client_id.h"
#include "broker/mail.h"
#include "broker/publish_batch.h"
#include "broker/retained_records.h"
#include "broker/session_records.h"
#include "mqtt/encoder.h"
#include "mqtt/varint.h"
#include "shard/shard_group.h"

namespace shardmq::broker {
namespace {

// Payloads up to this size are copied next to their header (one iovec, no
// reference count traffic); larger ones are sent from the shared Message.
constexpr size_t kCopyPayloadBelow = 512;

// An online session's queue may exceed --max-queued-messages/bytes by this
// factor before QoS 1/2 messages are dropped (and counted). Back-pressure
// pauses publishers at half the bound, so what goes over it is only what they
// had already sent when the pause landed: at most one window of unacknowledged
// QoS 1/2 publishes per publisher (40 publishers with 100 each overshoot a
// 1000-message bound fourfold). The hard cap is the safety net for what
// pausing cannot fix: a client flooding its own subscription is never paused
// (it could no longer read its acknowledgements), nor is a cycle of clients.
constexpr size_t kOnlineQueueSlack = 8;

// What a publisher sent before its pause landed can exceed even that when it
// crosses shards: the pause is a mail to the publisher's shard, and whatever
// that shard had already posted still arrives, up to its full inbound
// mailboxes when the subscriber's shard was starved of CPU (4 shards on 2
// cores under ASan dropped 7-9k QoS 1 messages of a 40-publisher test that
// way). Those messages already exist in memory, so a publisher this session
// can pause gets this many more messages (and the bytes cap once more) past
// the hard cap before its QoS 1/2 messages are dropped. A publisher that
// cannot be paused (the session itself) gets none; one whose pause does not
// hold it (an inline client) is still stopped here.
constexpr size_t kInFlightBeforePause = shard::kInboundMailBudget;

// Whether `session`'s queue may pause `publisher`. A client flooding its own
// subscription must go on reading its acknowledgements (kOnlineQueueSlack);
// a message without a publisher has nobody to pause.
bool CanPause(const Session& session, std::string_view publisher) {
  return !publisher.empty() && publisher != session.client_id;
}

uint64_t Load64(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

uint64_t Mix(uint64_t h, uint64_t w) {
  h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 31);
}

// Whether n bytes at a and b are equal, inline: topics are short, and
// memcmp's call through the PLT cost as much as the comparison.
bool SameBytes(const char* a, const char* b, size_t n) {
  if (n >= 8) {
    uint64_t diff = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) diff |= Load64(a + i) ^ Load64(b + i);
    if (i < n) diff |= Load64(a + n - 8) ^ Load64(b + n - 8);  // the tail, overlapping
    return diff == 0;
  }
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// The route cache's hash of a topic. absl::Hash was ~6 % of the broker's time
// per p2p message (a call into libabsl_low_level_hash.so and its setup for
// short keys); this one reads eight bytes at a time and inlines. Collisions
// only cost a cache miss (the slot compares the whole topic), so a client
// choosing topics that collide gets the uncached matching cost, no worse.
size_t RouteCacheHash(std::string_view topic) {
  const char* p = topic.data();
  const size_t n = topic.size();
  uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
  if (n >= 8) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) h = Mix(h, Load64(p + i));
    if (i < n) h = Mix(h, Load64(p + n - 8));  // the tail, overlapping
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    h = Mix(h, (uint64_t{a} << 32) | b);
  } else if (n > 0) {
    const auto byte = [&](size_t i) { return uint64_t{static_cast<uint8_t>(p[i])}; };
    h = Mix(h, (byte(0) << 16) | (byte(n / 2) << 8) | byte(n - 1));
  }
  return static_cast<size_t>(h ^ (h >> 29));
}

}  // namespace

bool BrokerShard::Route(const Message::Fields& fields, bool shared) {
  const int self = shard_.id();
  const int shards = shard_.shard_count();
  CollectMatches(fields.topic, /*want_shards=*/shards > 1);
  const size_t route_hash = route_hash_;  // (delivery below may route other messages)
  if (shared) [[likely]] {
    CollectSharedGroups(fields.topic);
  } else {
    shared_scratch_.clear();
  }
  const bool matched =
      !match_scratch_.empty() || !interest_scratch_.empty() || !shared_scratch_.empty();
  if (!fields.retain && !matched) {
    // Nobody anywhere subscribes: no Message is built, nothing is copied.
    ShardStats::Inc(stats_.dropped_no_subscribers);
    if (HooksWant(kHookDropped)) [[unlikely]] {
      context_.hooks.MessageDropped({}, ViewOf(fields), DropReason::kNoSubscribers);
    }
    return false;
  }
  if (match_scratch_.empty() && shared_scratch_.empty() && PublishBatch::Fits(fields)) {
    // Only other shards want it: each gets a copy in its publish batch and
    // builds the Message there. None is built here, none comes back.
    interest_scratch_.ForEach(
        [&](uint32_t target) { BatchPublish(static_cast<int>(target), fields, route_hash); });
    return true;
  }
  MessageRef message = MessageRef::Adopt(Message::Make(fields, shard_.Now()));
  if (message->retain()) {
    // Every shard keeps the retained set so SUBSCRIBE is answered locally.
    // An empty payload deletes [MQTT-3.3.1-10, MQTT-3.3.1-11].
    if (message->payload().empty()) {
      retained_.Erase(message->topic());
    } else {
      retained_.Set(std::string(message->topic()), message);
    }
    LogRetainedIfOwner(*message);
    for (int target = 0; target < shards; ++target) {
      if (target != self) PostMessage(target, kMailRetain, message);
    }
  }
  DeliverToMatches(message);
  // Shared groups: one member each, wherever it lives. (Expiry: a message
  // routed now is not expired, the members' queues check later.)
  for (const std::string& group : shared_scratch_) DeliverShared(message, group, 0, nullptr);
  // The last shard told gets this function's own reference: one atomic
  // increment fewer here, and no decrement racing the receiver's use of the
  // count's cache line (a p2p message crossing shards touches it twice
  // less).
  size_t left = interest_scratch_.count();
  interest_scratch_.ForEach([&](uint32_t target) {
    if (--left == 0) {
      PostMessage(static_cast<int>(target), kMailPublish, std::move(message), route_hash);
    } else {
      PostMessage(static_cast<int>(target), kMailPublish, MessageRef(message), route_hash);
    }
  });
  return matched;
}

void BrokerShard::PostMessage(int target, MailKind kind, MessageRef message, uint64_t arg) {
  shard::MailItem item;
  item.kind = kind;
  // Durability needs the topic after the item is posted (and possibly freed).
  const bool log_it =
      log_ != nullptr &&
      (kind != kMailRetain || RetainedOwner(message->topic(), shard_.shard_count()) == target);
  // The mail item owns one reference; the receiving shard adopts it.
  item.ptr = const_cast<Message*>(message.Release());
  item.arg = arg;
  PostMail(target, item);
  // Shards that may log records for the message (durable_acks.cc): its
  // subscribers' shards, and of the retained copies only the owner's.
  if (log_it) durable_targets_.Add(static_cast<uint32_t>(target));
}

void BrokerShard::PostMail(int target, const shard::MailItem& item) {
  if (publish_batches_[static_cast<size_t>(target)] != nullptr) [[unlikely]] {
    PostPublishBatch(target);
  }
  shard_.Post(target, item);
}

void BrokerShard::BatchPublish(int target, const Message::Fields& fields, uint64_t route_hash) {
  PublishBatch*& batch = publish_batches_[static_cast<size_t>(target)];
  // A full batch is posted now, while the publisher's data is being read, so
  // a mailbox that is full too pauses this publisher (Shard::PostBulk).
  if (batch != nullptr && !batch->Append(fields, route_hash)) PostPublishBatch(target);
  if (batch == nullptr) {
    if (spare_batches_.empty()) {
      batch = PublishBatch::Create();
    } else {
      batch = spare_batches_.back();
      spare_batches_.pop_back();
    }
    batched_targets_.push_back(static_cast<uint32_t>(target));
    batch->Append(fields, route_hash);  // (any message that Fits fits an empty batch)
  }
  if (log_ != nullptr) durable_targets_.Add(static_cast<uint32_t>(target));
}

// The mailbox's weight for a batch covers its largest one.
static_assert(PublishBatch::kMaxMessages <= shard::Shard::kBulkItemWeight);

void BrokerShard::PostPublishBatch(int target) {
  PublishBatch*& batch = publish_batches_[static_cast<size_t>(target)];
  shard::MailItem item;
  item.kind = kMailPublishBatch;
  item.ptr = batch;
  batch = nullptr;
  batched_targets_.erase(
      std::find(batched_targets_.begin(), batched_targets_.end(), static_cast<uint32_t>(target)));
  shard_.PostBulk(target, item);
}

void BrokerShard::OnMailFlush() {
  while (!batched_targets_.empty()) PostPublishBatch(static_cast<int>(batched_targets_.back()));
}

void BrokerShard::DeliverBatch(const PublishBatch& batch) {
  batch.ForEach([&](const Message::Fields& fields, uint64_t route_hash) {
    CollectMatches(fields.topic, /*want_shards=*/false, route_hash);
    // (Nobody left: the subscriber went while the batch was on its way.)
    if (match_scratch_.empty()) return;
    // Built in the spare memory if that is big enough, else in memory of its
    // own size. (Batches carry QoS 0 only: kept only by an offline session
    // that queues QoS 0, so rarely.)
    const size_t size = Message::AllocationSize(fields);
    size_t capacity = size;
    void* memory;
    if (spare_message_ != nullptr && size <= spare_message_bytes_) {
      memory = std::exchange(spare_message_, nullptr);
      capacity = spare_message_bytes_;
    } else {
      memory = ::operator new(size);
    }
    MessageRef message = MessageRef::Adopt(Message::MakeAt(memory, fields));
    DeliverToMatches(message);
    // Kept somewhere (a queue, a pending send)? Then its memory goes with it.
    if (void* reclaimed = Message::Reclaim(std::move(message))) {
      ::operator delete(spare_message_);
      spare_message_ = reclaimed;
      spare_message_bytes_ = capacity;
    }
  });
}

void BrokerShard::CollectMatches(std::string_view topic, bool want_shards, size_t hash) {
  const int shards = shard_.shard_count();
  RouteCacheSlot* slot = nullptr;
  route_hash_ = 0;
  if (topic.size() <= kRouteCacheMaxTopic) {
    const RouteCacheSlot* hit = nullptr;
    if (last_route_slot_ != nullptr && last_route_slot_->generation == route_generation_ &&
        last_route_slot_->Holds(topic)) {
      hit = last_route_slot_;
      route_hash_ = last_route_hash_;
    } else {
      // 0 is a possible hash too: then it is computed again, no harm done.
      route_hash_ = hash != 0 ? hash : RouteCacheHash(topic);
      slot = &route_cache_[route_hash_ % kRouteCacheSlots];
      if (slot->generation == route_generation_ && slot->Holds(topic)) hit = slot;
    }
    if (hit != nullptr) {
      match_scratch_.assign(hit->matches.begin(), hit->matches.end());
      if (want_shards) interest_scratch_ = hit->shards;
      last_route_slot_ = hit;
      last_route_hash_ = route_hash_;
      return;
    }
  }
  CollectLocalMatches(topic);
  interest_scratch_.Clear();
  if (shards > 1) {
    // Computed even when not wanted now, so the cached entry is complete.
    interest_.ShardsFor(topic, interest_scratch_);
    interest_scratch_.Remove(static_cast<uint32_t>(shard_.id()));
  }
  if (slot != nullptr && match_scratch_.size() <= kRouteCacheMaxMatches) {
    slot->generation = route_generation_;
    slot->SetTopic(topic);
    slot->matches.assign(match_scratch_.begin(), match_scratch_.end());
    slot->shards = interest_scratch_;
    last_route_slot_ = slot;
    last_route_hash_ = route_hash_;
  }
}

bool BrokerShard::RouteCacheSlot::Holds(std::string_view topic) const {
  if (topic.size() != topic_size) return false;
  const char* held = topic_size <= kRouteCacheInlineTopic ? inline_topic : long_topic.data();
  return SameBytes(held, topic.data(), topic.size());
}

void BrokerShard::RouteCacheSlot::SetTopic(std::string_view topic) {
  topic_size = static_cast<uint32_t>(topic.size());
  if (topic.size() <= kRouteCacheInlineTopic) {
    std::memcpy(inline_topic, topic.data(), topic.size());
    long_topic.clear();
  } else {
    long_topic.assign(topic.data(), topic.size());
  }
}

void BrokerShard::CollectLocalMatches(std::string_view topic) {
  // Every matching subscription, grouped by session so DeliverToMatches can
  // merge one session's overlapping subscriptions into one copy
  // [MQTT-3.3.4-2, -3, -4, -5]. A single match (the p2p case) costs no sort.
  match_scratch_.clear();
  index_.Match(topic,
               [&](topic::SubscriberId subscriber, const topic::SubscriptionOptions& options) {
                 match_scratch_.push_back(Match{reinterpret_cast<Session*>(subscriber), options});
               });
  if (match_scratch_.size() < 2) return;
  std::stable_sort(match_scratch_.begin(), match_scratch_.end(),
                   [](const Match& a, const Match& b) { return a.session < b.session; });
}

void BrokerShard::DeliverToMatches(const MessageRef& message) {
  // Its copies here wait for the publisher's commit (durable_acks.cc).
  if (message->origin() != 0) pending_origins_.insert(message->origin());
  if (match_scratch_.size() > 1) {
    publish_cache_.message = message.get();
    publish_cache_.filled[0] = publish_cache_.filled[1] = false;
  }
  const shard::Clock::time_point now =
      message->has_expiry() ? shard_.Now() : shard::Clock::time_point{};
  if (message->Expired(now)) {
    ShardStats::Inc(stats_.dropped_expired);
    NoteDropped({}, *message, DropReason::kExpired);
    publish_cache_.message = nullptr;
    return;
  }
  for (size_t begin = 0; begin < match_scratch_.size();) {
    Session* session = match_scratch_[begin].session;
    size_t end = begin + 1;
    while (end < match_scratch_.size() && match_scratch_[end].session == session) ++end;
    // Merge the session's matching subscriptions: the highest QoS, RETAIN
    // kept if any says Retain As Published (else cleared, [MQTT-3.3.1-12]),
    // every Subscription Identifier; No Local ones skip the publisher's own
    // messages [MQTT-3.8.3-3].
    int qos = -1;
    bool retain_as_published = false;
    ids_scratch_.clear();
    for (size_t i = begin; i < end; ++i) {
      const topic::SubscriptionOptions& options = match_scratch_[i].options;
      if (options.no_local && message->publisher() == session->client_id) continue;
      qos = std::max<int>(qos, options.qos);
      retain_as_published |= options.retain_as_published;
      if (options.subscription_id != 0) ids_scratch_.push_back(options.subscription_id);
    }
    begin = end;
    if (qos < 0) continue;
    Deliver(*session, message, std::min<uint8_t>(static_cast<uint8_t>(qos), message->qos()),
            retain_as_published && message->retain(), ids_scratch_);
  }
  publish_cache_.message = nullptr;
}

size_t BrokerShard::InflightWindow(const Session& session) const {
  size_t window = limits_.max_inflight;
  if (session.connection != nullptr) {
    window = std::min<size_t>(window, session.connection->client_receive_maximum);
  }
  return window;
}

void BrokerShard::Deliver(Session& session, const MessageRef& message, uint8_t qos, bool retain,
                          const absl::Span<const uint32_t>& ids, const std::string* shared_group) {
  if (HooksWant(kHookDeliver)) [[unlikely]] {
    // The receive ACL (Mosquitto checks read access at delivery too).
    if (context_.hooks.DeliverCheck(InfoFor(session), ViewOf(*message)).kind ==
        Decision::Kind::kDeny) {
      NoteDropped(session.client_id, *message, DropReason::kNotAuthorized);
      return;
    }
  }
  if (session.parked) [[unlikely]] {
    // --cluster-redis: an offline session's messages wait in Redis.
    PushParked(session, *message, qos, retain, ids);
    return;
  }
  Connection* conn = session.connection;
  if (conn != nullptr && conn->state != Connection::State::kConnected) conn = nullptr;
  if (conn == nullptr && !extras_.empty()) {
    // Perhaps an InlineClient: its callbacks are its connection.
    auto extra = extras_.find(&session);
    if (extra != extras_.end() && extra->second->inline_sink != nullptr) {
      std::shared_ptr<InlineSink> sink = extra->second->inline_sink;  // callbacks may end it
      DeliverInline(session, *sink, message, qos, retain, shared_group);
      return;
    }
  }
  if (qos == 0) {
    if (conn == nullptr) {
      if (session.persistent && limits_.queue_qos0_offline) {
        Enqueue(session, message, 0, retain, ids, shared_group);
      }
      return;
    }
    if (shard_.QueuedBytes(conn->id) > limits_.max_outbound_bytes) {
      // A slow subscriber loses QoS 0 messages, not the broker's memory.
      ShardStats::Inc(stats_.dropped_qos0_slow);
      SHARDMQ_LOG_THROTTLED(kWarning,
                            "dropping QoS 0 messages for %s: it is not reading (more than %d "
                            "bytes unsent, --max-outbound-bytes)",
                            session.client_id, limits_.max_outbound_bytes);
      NoteDropped(session.client_id, *message, DropReason::kSlowSubscriber);
      return;
    }
    SendPublish(*conn, *message, 0, 0, false, retain, ids);
    return;
  }
  if (conn != nullptr && session.queue.empty() &&
      session.inflight.size() < InflightWindow(session) && !HoldsUnsent(session)) {
    uint16_t packet_id = session.AllocatePacketId();
    const uint64_t item = LogQueued(session, message, qos, retain, shared_group, ids);
    const bool hold = item != 0 && qos == 2 && context_.durability_sync;
    // Too large for this client: dropped for it alone, as if acknowledged.
    if (!hold && !SendPublish(*conn, *message, qos, packet_id, false, retain, ids)) {
      LogItem(kRecordDone, item);
      return;
    }
    LogItem(kRecordSent, item, packet_id);
    InflightMessage inflight{message, qos, retain, false, session.next_sequence++};
    inflight.subscription_ids.assign(ids.begin(), ids.end());
    if (shared_group != nullptr)
      inflight.shared_group = std::make_unique<std::string>(*shared_group);
    inflight.log_item = item;
    inflight.awaiting_store = hold;
    session.inflight.emplace(packet_id, std::move(inflight));
    if (hold) SendWhenStored(session, packet_id, item, CommitToWaitFor(*message, shared_group));
    return;
  }
  Enqueue(session, message, qos, retain, ids, shared_group);
  // Live QoS 1/2 traffic to a connected client that cannot keep up slows its
  // publishers down instead of being dropped. Retained messages sent for a new
  // subscription (retain = true) are not the publisher's doing.
  if (conn != nullptr && !retain && OverHighWatermark(session)) {
    ApplyBackpressure(session, message->publisher());
  }
}

bool BrokerShard::Enqueue(Session& session, const MessageRef& message, uint8_t qos, bool retain,
                          absl::Span<const uint32_t> ids, const std::string* shared_group) {
  size_t bytes = message->payload().size() + message->topic().size();
  const bool online = session.connection != nullptr;
  const size_t max_messages =
      limits_.max_queued_messages * (online && qos > 0 ? kOnlineQueueSlack : 1);
  const size_t max_bytes = limits_.max_queued_bytes * (online && qos > 0 ? kOnlineQueueSlack : 1);
  const bool over_cap =
      session.queue.size() >= max_messages || session.queued_bytes + bytes > max_bytes;
  // Past the hard cap, only what a publisher had sent before its pause landed.
  if (over_cap && !(online && qos > 0 && CanPause(session, message->publisher()) &&
                    session.queue.size() < max_messages + kInFlightBeforePause &&
                    session.queued_bytes + bytes <= 2 * max_bytes)) {
    ShardStats::Inc(stats_.dropped_queue_full);
    SHARDMQ_LOG_THROTTLED(kWarning,
                          "dropping messages for %s: its queue is full (%d messages / %d bytes, "
                          "--max-queued-messages / --max-queued-bytes)",
                          session.client_id, session.queue.size(), session.queued_bytes);
    NoteDropped(session.client_id, *message, DropReason::kQueueFull);
    return false;
  }
  QueuedMessage queued{message, qos, retain};
  queued.bytes = static_cast<uint32_t>(bytes);
  queued.subscription_ids.assign(ids.begin(), ids.end());
  if (shared_group != nullptr) queued.shared_group = std::make_unique<std::string>(*shared_group);
  // QoS 0 copies are not stored: the spec lets them go with the broker.
  if (qos > 0) queued.log_item = LogQueued(session, message, qos, retain, shared_group, ids);
  if (spill_ != nullptr && ShouldSpill(session, queued)) {
    // Over --max-memory: the copy keeps only where its record is.
    queued.spilled = SpillLoggedMessage();
    queued.message = MessageRef();
    ++spill_->copies;
    ShardStats::Inc(stats_.store_spilled);
  } else {
    ChargeQueued(queued, true);
  }
  session.queue.push_back(std::move(queued));
  session.queued_bytes += bytes;
  return true;
}

void BrokerShard::PumpQueue(Session& session) {
  Connection* conn = session.connection;
  if (conn == nullptr || conn->state != Connection::State::kConnected) return;
  const size_t window = InflightWindow(session);
  shard::Clock::time_point now{};
  // Behind a QoS 2 message held for the disk nothing overtakes it (its
  // release pumps the queue again).
  bool held = HoldsUnsent(session);
  while (!held && !session.queue.empty() && session.inflight.size() < window) {
    if (session.queue.front().spilled != nullptr) {
      // Kept only in the log: read back first (and what follows it).
      LoadSpilled(session);
      break;
    }
    QueuedMessage queued = std::move(session.queue.front());
    session.queue.pop_front();
    session.queued_bytes -= queued.bytes;
    if (!queued.message) continue;  // could not be read back from the log (LoadSpilled)
    ChargeQueued(queued, false);
    if (queued.message->has_expiry()) {
      // A message whose interval passed while it waited is not sent
      // [MQTT-3.3.2-5].
      if (now == shard::Clock::time_point{}) now = shard_.Now();
      if (queued.message->Expired(now)) {
        LogItem(kRecordDone, queued.log_item);
        ShardStats::Inc(stats_.dropped_expired);
        NoteDropped(session.client_id, *queued.message, DropReason::kExpired);
        continue;
      }
    }
    if (queued.qos == 0) {
      SendPublish(*conn, *queued.message, 0, 0, false, queued.retain, queued.subscription_ids);
      continue;
    }
    uint16_t packet_id = session.AllocatePacketId();
    const uint64_t item = queued.log_item;
    const bool hold = item != 0 && queued.qos == 2 && context_.durability_sync;
    if (!hold && !SendPublish(*conn, *queued.message, queued.qos, packet_id, false, queued.retain,
                              queued.subscription_ids)) {
      LogItem(kRecordDone, item);
      continue;
    }
    LogItem(kRecordSent, item, packet_id);
    InflightMessage inflight{std::move(queued.message), queued.qos, queued.retain, false,
                             session.next_sequence++};
    inflight.subscription_ids = std::move(queued.subscription_ids);
    inflight.shared_group = std::move(queued.shared_group);
    inflight.log_item = item;
    inflight.awaiting_store = hold;
    const uint64_t origin = CommitToWaitFor(*inflight.message, inflight.shared_group.get());
    session.inflight.emplace(packet_id, std::move(inflight));
    if (hold) {
      SendWhenStored(session, packet_id, item, origin);
      held = true;
    }
  }
  if (!session.paused_publishers.empty() && UnderLowWatermark(session)) {
    ReleaseBackpressure(session);
  }
  if (!retained_backlog_.empty()) FeedRetainedBacklog(session);
}

bool BrokerShard::OverHighWatermark(const Session& session) const {
  return session.queue.size() >= std::max<size_t>(1, limits_.max_queued_messages / 2) ||
         session.queued_bytes >= limits_.max_queued_bytes / 2;
}

bool BrokerShard::UnderLowWatermark(const Session& session) const {
  return session.queue.size() <= limits_.max_queued_messages / 4 &&
         session.queued_bytes <= limits_.max_queued_bytes / 4;
}

void BrokerShard::ApplyBackpressure(Session& session, std::string_view publisher) {
  if (!CanPause(session, publisher)) return;
  auto [it, inserted] = session.paused_publishers.emplace(publisher);
  if (!inserted) return;  // this session already holds one pause on it
  ShardStats::Inc(stats_.publisher_pauses);
  int home = HomeShard(publisher, shard_.shard_count());
  if (home == shard_.id()) {
    ChangePublisherPause(*it, +1);
  } else {
    shard::MailItem item;
    item.kind = kMailPausePublisher;
    item.ptr = new std::string(publisher);
    PostMail(home, item);
  }
}

void BrokerShard::ReleaseBackpressure(Session& session) {
  for (const std::string& publisher : session.paused_publishers) {
    int home = HomeShard(publisher, shard_.shard_count());
    if (home == shard_.id()) {
      ChangePublisherPause(publisher, -1);
    } else {
      shard::MailItem item;
      item.kind = kMailResumePublisher;
      item.ptr = new std::string(publisher);
      PostMail(home, item);
    }
  }
  session.paused_publishers.clear();
}

void BrokerShard::ChangePublisherPause(const std::string& publisher, int delta) {
  int& count = publisher_pauses_[publisher];
  count += delta;
  if (count <= 0) publisher_pauses_.erase(publisher);
  auto it = sessions_.find(publisher);
  if (it == sessions_.end() || it->second->connection == nullptr) return;
  ApplyPauseState(*it->second->connection);
}

void BrokerShard::ApplyPauseState(Connection& conn) {
  if (conn.session == nullptr || conn.state != Connection::State::kConnected) return;
  bool want_paused = publisher_pauses_.contains(conn.session->client_id) ||
                     (conn.throttle != nullptr && conn.throttle->holding) || conn.cluster_paused;
  if (want_paused == conn.reading_paused) return;
  conn.reading_paused = want_paused;
  if (want_paused) {
    shard_.PauseReading(conn.id);
  } else {
    shard_.ResumeReading(conn.id);
    conn.last_packet = shard_.Now();  // the pause does not count against keep-alive
  }
}

void BrokerShard::ResendInflight(Session& session) {
  Connection* conn = session.connection;
  if (conn == nullptr) return;
  std::vector<std::pair<uint64_t, uint16_t>> order;
  order.reserve(session.inflight.size());
  for (const auto& [packet_id, inflight] : session.inflight) {
    // Still waiting for the disk: SendWhenStored sends it.
    if (!inflight.awaiting_store) order.emplace_back(inflight.sequence, packet_id);
  }
  std::sort(order.begin(), order.end());
  for (const auto& [sequence, packet_id] : order) {
    const InflightMessage& inflight = session.inflight.at(packet_id);
    if (inflight.released) {
      mqtt::PubAck pubrel;
      pubrel.type = mqtt::PacketType::kPubrel;
      pubrel.packet_id = packet_id;
      SendPacket(*conn, pubrel);
    } else {
      // A resend is the same PUBLISH with DUP set [MQTT-3.3.1-1]. If the
      // client lowered its Maximum Packet Size since, it no longer fits: it is
      // dropped for this client, as if acknowledged [MQTT-3.1.2-25].
      if (!SendPublish(*conn, *inflight.message, inflight.qos, packet_id, /*dup=*/true,
                       inflight.retain, inflight.subscription_ids)) {
        LogItem(kRecordDone, inflight.log_item);
        session.inflight.erase(packet_id);
      }
    }
  }
}

bool BrokerShard::SendPublish(Connection& conn, const Message& message, uint8_t qos,
                              uint16_t packet_id, bool dup, bool retain,
                              const absl::Span<const uint32_t>& ids) {
  const bool v5 = conn.version == mqtt::ProtocolVersion::kV5;
  // Without per-subscriber properties (identifiers, aliases), a QoS 0
  // PUBLISH is the same bytes for every subscriber of one layout.
  const bool cacheable = publish_cache_.message == &message && qos == 0 && !dup && !retain &&
                         message.payload().size() < kCopyPayloadBelow &&
                         (!v5 || (ids.empty() && conn.client_topic_alias_maximum == 0));
  if (cacheable) {
    const int layout = v5 ? 1 : 0;
    std::vector<uint8_t>& bytes = publish_cache_.bytes[layout];
    if (!publish_cache_.filled[layout]) {
      const mqtt::Publish publish = PublishFor(message, conn.version);
      const size_t header_size = mqtt::PublishHeaderSize(publish, conn.version);
      bytes.resize(header_size + message.payload().size());
      mqtt::EncodePublishHeader(publish, conn.version, absl::MakeSpan(bytes));
      std::copy(message.payload().begin(), message.payload().end(), bytes.begin() + header_size);
      publish_cache_.filled[layout] = true;
    }
    if (bytes.size() > conn.client_max_packet_size) {
      ShardStats::Inc(stats_.dropped_too_large);
      if (conn.session != nullptr)
        NoteDropped(conn.session->client_id, message, DropReason::kTooLarge);
      return false;
    }
    shard_.Send(conn.id, absl::MakeConstSpan(bytes));
    NoteSent(conn, message, qos, dup);
    return true;
  }
  // Nothing but the topic to put in the variable header (MQTT 3.x, or an
  // MQTT 5 message with no properties to forward and no Subscription
  // Identifier or Topic Alias for this client): written straight into the
  // connection's output, without an mqtt::Publish (~400 bytes to set up) or
  // a copy through encode_buffer_.
  if (!v5 || (message.properties() == nullptr && !message.has_expiry() && ids.empty() &&
              conn.client_topic_alias_maximum == 0)) {
    if (std::optional<bool> sent = SendPlainPublish(conn, message, qos, packet_id, dup, retain)) {
      return *sent;
    }
  }
  mqtt::Publish publish = PublishFor(message, conn.version);
  publish.qos = qos;
  publish.packet_id = packet_id;
  publish.dup = dup;
  publish.retain = retain;
  uint16_t new_alias = 0;
  if (v5) {
    publish.properties.subscription_identifiers.assign(ids.begin(), ids.end());
    if (conn.client_topic_alias_maximum > 0) {
      // Server-to-client aliases, first come first served: a topic keeps its
      // alias for the connection's life; once all are taken, new topics go
      // in full. Topics too short to gain from an alias are not given one.
      Connection::TopicAliases& aliases = conn.Aliases();
      if (auto it = aliases.outbound.find(
              absl::string_view(message.topic().data(), message.topic().size()));
          it != aliases.outbound.end()) {
        publish.topic = {};
        publish.properties.topic_alias = it->second;
      } else if (message.topic().size() > 2 &&
                 aliases.outbound.size() < conn.client_topic_alias_maximum) {
        new_alias = static_cast<uint16_t>(aliases.outbound.size() + 1);
        publish.properties.topic_alias = new_alias;
      }
    }
  }
  size_t header_size = mqtt::PublishHeaderSize(publish, conn.version);
  if (header_size == 0 || header_size + message.payload().size() > conn.client_max_packet_size) {
    ShardStats::Inc(stats_.dropped_too_large);
    if (conn.session != nullptr)
      NoteDropped(conn.session->client_id, message, DropReason::kTooLarge);
    return false;
  }
  if (new_alias != 0) conn.Aliases().outbound.emplace(std::string(message.topic()), new_alias);
  bool copy_payload = message.payload().size() < kCopyPayloadBelow;
  size_t total = header_size + (copy_payload ? message.payload().size() : 0);
  if (encode_buffer_.size() < total) encode_buffer_.resize(total);
  mqtt::EncodePublishHeader(publish, conn.version, absl::MakeSpan(encode_buffer_));
  if (copy_payload) {
    std::copy(message.payload().begin(), message.payload().end(),
              encode_buffer_.begin() + header_size);
    shard_.Send(conn.id, absl::MakeConstSpan(encode_buffer_.data(), total));
  } else {
    shard_.Send(conn.id, absl::MakeConstSpan(encode_buffer_.data(), header_size));
    shard_.SendShared(conn.id, message.payload(), &message);
  }
  NoteSent(conn, message, qos, dup);
  return true;
}

mqtt::Publish BrokerShard::PublishFor(const Message& message, mqtt::ProtocolVersion version) {
  mqtt::Publish publish;
  publish.topic = message.topic();
  publish.payload = message.payload();
  if (version == mqtt::ProtocolVersion::kV5) {
    if (message.properties() != nullptr) publish.properties = *message.properties();
    if (message.has_expiry()) {
      // The interval forwarded is what is left of it [MQTT-3.3.2-6].
      publish.properties.message_expiry_interval = message.RemainingExpirySeconds(shard_.Now());
    }
  }
  return publish;
}

std::optional<bool> BrokerShard::SendPlainPublish(Connection& conn, const Message& message,
                                                  uint8_t qos, uint16_t packet_id, bool dup,
                                                  bool retain) {
  const bool v5 = conn.version == mqtt::ProtocolVersion::kV5;
  const std::string_view topic = message.topic();
  const absl::Span<const uint8_t> payload = message.payload();
  // Topic length and topic, packet id (QoS 1/2), MQTT 5's empty property
  // length, payload (MQTT 3.1.1 section 3.3, MQTT 5 section 3.3).
  const size_t remaining = 2 + topic.size() + (qos > 0 ? 2 : 0) + (v5 ? 1 : 0) + payload.size();
  if (remaining > mqtt::kMaxVarint) {
    ShardStats::Inc(stats_.dropped_too_large);
    if (conn.session != nullptr)
      NoteDropped(conn.session->client_id, message, DropReason::kTooLarge);
    return false;
  }
  const size_t header_size =
      1 + mqtt::VarintSize(static_cast<uint32_t>(remaining)) + remaining - payload.size();
  if (header_size + payload.size() > conn.client_max_packet_size) {
    ShardStats::Inc(stats_.dropped_too_large);
    if (conn.session != nullptr)
      NoteDropped(conn.session->client_id, message, DropReason::kTooLarge);
    return false;
  }
  const bool copy_payload = payload.size() < kCopyPayloadBelow;
  uint8_t* out = shard_.SendInPlace(conn.id, header_size + (copy_payload ? payload.size() : 0));
  if (out == nullptr) return std::nullopt;  // TLS or WebSocket: SendPublish's general path
  *out++ = static_cast<uint8_t>(0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0));
  out += mqtt::EncodeVarint(static_cast<uint32_t>(remaining), out);
  *out++ = static_cast<uint8_t>(topic.size() >> 8);
  *out++ = static_cast<uint8_t>(topic.size() & 0xFF);
  std::memcpy(out, topic.data(), topic.size());
  out += topic.size();
  if (qos > 0) {
    *out++ = static_cast<uint8_t>(packet_id >> 8);
    *out++ = static_cast<uint8_t>(packet_id & 0xFF);
  }
  if (v5) *out++ = 0;  // property length
  if (copy_payload) {
    if (!payload.empty()) std::memcpy(out, payload.data(), payload.size());
  } else {
    shard_.SendShared(conn.id, payload, &message);
  }
  NoteSent(conn, message, qos, dup);
  return true;
}

void BrokerShard::NoteSent(Connection& conn, const Message& message, uint8_t qos, bool dup) {
  stats_.CountSent(qos, message.topic().size() + message.payload().size());
  if (!dup && conn.session != nullptr && HooksWant(kHookDeliver)) [[unlikely]] {
    context_.hooks.MessageDelivered(InfoFor(*conn.session), ViewOf(message), qos);
  }
}

namespace {

// The properties of packets that may carry a Reason String or User Property,
// or nullptr.
mqtt::Properties* DiagnosticProperties(mqtt::Packet& packet) {
  return std::visit(
      [](auto& p) -> mqtt::Properties* {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, mqtt::PingReq> || std::is_same_v<T, mqtt::PingResp>) {
          return nullptr;
        } else if constexpr (std::is_same_v<T, mqtt::Connect> || std::is_same_v<T, mqtt::Publish>) {
          return nullptr;  // the broker never sends CONNECT; PUBLISH keeps its own
        } else {
          return &p.properties;
        }
      },
      packet);
}

}  // namespace

void BrokerShard::SendAck(Connection& conn, mqtt::PacketType type, uint16_t packet_id,
                          mqtt::ReasonCode reason) {
  // Fixed header (PUBREL's flags are 0b0010 [MQTT-3.6.1-1]), remaining
  // length, packet id and, in MQTT 5, the reason code unless it is Success:
  // both omissions are what 3.4.2.1 allows when there are no properties.
  const bool with_reason =
      conn.version == mqtt::ProtocolVersion::kV5 && reason != mqtt::ReasonCode::kSuccess;
  const uint8_t bytes[5] = {static_cast<uint8_t>(static_cast<uint8_t>(type) << 4 |
                                                 (type == mqtt::PacketType::kPubrel ? 0x02 : 0x00)),
                            static_cast<uint8_t>(with_reason ? 3 : 2),
                            static_cast<uint8_t>(packet_id >> 8),
                            static_cast<uint8_t>(packet_id & 0xFF), static_cast<uint8_t>(reason)};
  shard_.Send(conn.id, absl::MakeConstSpan(bytes, with_reason ? 5 : 4));
}

void BrokerShard::SendPacket(Connection& conn, const mqtt::Packet& original) {
  const mqtt::Packet* packet = &original;
  std::optional<mqtt::Packet> stripped;
  size_t size = mqtt::EncodedSize(*packet, conn.version);
  if (conn.version == mqtt::ProtocolVersion::kV5) {
    const mqtt::PacketType type = mqtt::GetPacketType(original);
    // Request Problem Information 0: Reason String and User Property only on
    // PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29]. And never a packet
    // larger than the client's Maximum Packet Size: those two go first
    // [MQTT-3.1.2-24, 3.4.2.2.2].
    const bool diagnostics_allowed = conn.problem_information ||
                                     type == mqtt::PacketType::kConnack ||
                                     type == mqtt::PacketType::kDisconnect;
    if (!diagnostics_allowed || size > conn.client_max_packet_size) {
      stripped = original;
      if (mqtt::Properties* props = DiagnosticProperties(*stripped)) {
        props->reason_string.reset();
        props->user_properties.clear();
      }
      packet = &*stripped;
      size = mqtt::EncodedSize(*packet, conn.version);
    }
  }
  if (encode_buffer_.size() < size) encode_buffer_.resize(size);
  size_t written = mqtt::Encode(*packet, conn.version, absl::MakeSpan(encode_buffer_));
  shard_.Send(conn.id, absl::MakeConstSpan(encode_buffer_.data(), written));
}

}  // namespace shardmq::broker
