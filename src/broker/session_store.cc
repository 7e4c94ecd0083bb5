// Durable sessions: appending a persistent session's changes to its home
// shard's log (records in session_records.h), restoring the sessions
// recovered at start-up (session_recovery.h), and holding what --durability
// =sync must not send before the disk has it. README "Durable state" tells
// users what each mode keeps.
//
// A session is logged while Session::logged is set: from the CONNECT that
// makes it persistent (all of it is logged then, so a session that was
// taken over from a clean one starts complete) until it ends or a CONNECT
// or DISCONNECT leaves it without an expiry. Every Log* call does nothing
// for a session that is not logged, so callers need not ask.
#include <algorithm>

#include "base/log.h"
#include "base/log_throttle.h"
#include "broker/broker_shard.h"
#include "broker/client_id.h"
#include "broker/record_codec.h"
#include "broker/retained_recovery.h"
#include "broker/session_records.h"
#include "broker/will.h"
#include "mqtt/topic_validation.h"
#include "store/log_format.h"

namespace shardmq::broker {

void BrokerShard::AppendScratch(uint8_t type) {
  ShardStats::Inc(stats_.store_records);
  log_->Append(type, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(record_scratch_.data()),
                                         record_scratch_.size()));
}

std::optional<std::string> BrokerShard::UsernameOf(const Session& session) const {
  if (extras_.empty()) return std::nullopt;
  auto it = extras_.find(&session);
  return it == extras_.end() ? std::nullopt : it->second->username;
}

void BrokerShard::LogSessionAtConnect(Session& session, mqtt::ProtocolVersion version) {
  if (session.persistent && !session.logged) {
    session.logged = true;
    // Copies of its earlier incarnations' messages count as committed.
    commit_marks_[&session] = next_log_number_ - 1;
    LogWholeSession(session, static_cast<uint8_t>(version));
  } else if (session.persistent) {
    // Online again, perhaps with another expiry.
    record_scratch_.clear();
    EncodeSessionPut(session.client_id, session.expiry_interval, static_cast<uint8_t>(version),
                     UsernameOf(session), CommitMarkOf(session), record_scratch_);
    AppendScratch(kRecordSessionPut);
  } else if (session.logged) {
    LogSessionEnd(session);  // resumed without an expiry: it ends with this connection
  }
}

void BrokerShard::LogWholeSession(Session& session, uint8_t protocol_version) {
  record_scratch_.clear();
  EncodeSessionPut(session.client_id, session.expiry_interval, protocol_version,
                   UsernameOf(session), CommitMarkOf(session), record_scratch_);
  AppendScratch(kRecordSessionPut);
  if (auto it = offline_.find(&session); it != offline_.end() && session.connection == nullptr) {
    record_scratch_.clear();
    EncodeSessionOffline(session.client_id, it->second.offline_since_wall_ns,
                         session.expiry_interval, record_scratch_);
    AppendScratch(kRecordSessionOffline);
    if (it->second.delayed_will != nullptr) {
      LogWill(session, *it->second.delayed_will, it->second.will_due_wall_ns);
    }
  }
  for (const auto& [filter, subscription] : session.subscriptions) {
    LogSubscribe(session, filter, subscription.options);
  }
  // In flight first, in send order, then the queue: recovery keeps item order.
  std::vector<std::pair<uint64_t, uint16_t>> order;
  order.reserve(session.inflight.size());
  for (const auto& [packet_id, inflight] : session.inflight) {
    order.emplace_back(inflight.sequence, packet_id);
  }
  std::sort(order.begin(), order.end());
  for (const auto& [sequence, packet_id] : order) {
    InflightMessage& inflight = session.inflight.at(packet_id);
    if (inflight.released) {
      // Only the packet id is left: a QUEUED needs a body, so an empty one.
      static const MessageRef kEmpty = MessageRef::Adopt(Message::Make(Message::Fields{}));
      inflight.log_item =
          LogQueued(session, kEmpty, 2, false, nullptr, absl::Span<const uint32_t>());
      LogItem(kRecordSent, inflight.log_item, packet_id);
      LogItem(kRecordReleased, inflight.log_item);
      continue;
    }
    inflight.log_item = LogQueued(session, inflight.message, inflight.qos, inflight.retain,
                                  inflight.shared_group.get(), inflight.subscription_ids);
    // One held for the disk was never sent: its packet id is all the same
    // the one it will be sent with.
    LogItem(kRecordSent, inflight.log_item, packet_id);
  }
  for (QueuedMessage& queued : session.queue) {
    if (queued.qos == 0) continue;
    if (queued.spilled != nullptr) {
      queued.log_item = LogSpilledQueued(session, queued);
      continue;
    }
    if (!queued.message) continue;  // lost while being read back from the log
    queued.log_item = LogQueued(session, queued.message, queued.qos, queued.retain,
                                queued.shared_group.get(), queued.subscription_ids);
  }
  for (uint16_t packet_id : session.inbound_qos2) {
    // An id whose commit is under way is logged by the commit, after its
    // copies (durable_acks.cc); logging it here could put it on disk first.
    if (!CommitPending(session.client_id, packet_id)) LogInboundQos2(session, packet_id, true);
  }
}

void BrokerShard::LogSessionOffline(Session& session) {
  if (!session.logged) return;
  record_scratch_.clear();
  EncodeSessionOffline(session.client_id, WallNowNs(), session.expiry_interval, record_scratch_);
  AppendScratch(kRecordSessionOffline);
}

void BrokerShard::LogSessionEnd(Session& session) {
  if (!session.logged) return;
  session.logged = false;
  commit_marks_.erase(&session);
  record_scratch_.clear();
  EncodeClientOnly(session.client_id, record_scratch_);
  AppendScratch(kRecordSessionEnd);
  // Its messages' numbers mean nothing now; a session that is logged again
  // later logs them afresh.
  for (auto& [packet_id, inflight] : session.inflight) inflight.log_item = 0;
  for (QueuedMessage& queued : session.queue) queued.log_item = 0;
}

void BrokerShard::LogSubscribe(Session& session, const std::string& filter,
                               const topic::SubscriptionOptions& options) {
  if (!session.logged) return;
  record_scratch_.clear();
  EncodeSubscribe(session.client_id, filter, options, record_scratch_);
  AppendScratch(kRecordSubscribe);
}

void BrokerShard::LogUnsubscribe(Session& session, const std::string& filter) {
  if (!session.logged) return;
  record_scratch_.clear();
  EncodeUnsubscribe(session.client_id, filter, record_scratch_);
  AppendScratch(kRecordUnsubscribe);
}

uint64_t BrokerShard::LogQueued(Session& session, const MessageRef& message, uint8_t qos,
                                bool retain, const std::string* shared_group,
                                absl::Span<const uint32_t> ids) {
  if (!session.logged) return 0;
  if (logged_message_.get() != message.get()) {
    // First copy of this message on this shard since another was logged:
    // the message itself, once for all the sessions it is fanned out to.
    logged_message_ = message;
    logged_message_number_ = next_log_number_++;
    std::optional<int64_t> expires_at;
    if (message->has_expiry()) {
      expires_at =
          WallNowNs() + int64_t{message->RemainingExpirySeconds(shard_.Now())} * 1'000'000'000;
    }
    record_scratch_.clear();
    EncodeMessage(logged_message_number_, message->origin(), message->topic(), message->publisher(),
                  message->qos(), message->retain(), expires_at, message->properties(),
                  message->payload(), record_scratch_);
    if (spill_ != nullptr) {
      // Its place in the log is wanted should a copy be kept only there.
      ShardStats::Inc(stats_.store_records);
      logged_message_sequence_ =
          log_->Append(kRecordMessage,
                       absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(record_scratch_.data()),
                                           record_scratch_.size()),
                       /*locate=*/true);
      logged_message_where_ =
          SpillLocation{.directory = shard_.id(),
                        .length = static_cast<uint32_t>(store::FramedSize(record_scratch_.size())),
                        .body = logged_message_number_};
      logged_message_located_ = false;
      logged_message_spill_.reset();
    } else {
      AppendScratch(kRecordMessage);
    }
  }
  const uint64_t item = next_log_number_++;
  record_scratch_.clear();
  EncodeQueued(item, logged_message_number_, session.client_id, qos, retain,
               shared_group != nullptr ? std::string_view(*shared_group) : std::string_view(), ids,
               record_scratch_);
  AppendScratch(kRecordQueued);
  return item;
}

void BrokerShard::LogItem(uint8_t type, uint64_t item, uint16_t packet_id) {
  if (item == 0) return;
  record_scratch_.clear();
  if (type == kRecordSent) {
    EncodeSent(item, packet_id, record_scratch_);
  } else {
    EncodeItemOnly(item, record_scratch_);
  }
  AppendScratch(type);
}

void BrokerShard::LogInboundQos2(Session& session, uint16_t packet_id, bool added,
                                 uint64_t commit) {
  if (!session.logged) return;
  record_scratch_.clear();
  EncodeInboundQos2(session.client_id, packet_id, added, commit, record_scratch_);
  AppendScratch(kRecordInboundQos2);
}

void BrokerShard::LogWill(Session& session, const WillMessage& will, int64_t due_wall_ns) {
  if (!session.logged) return;
  const Message& message = *will.message;
  record_scratch_.clear();
  EncodeWill(session.client_id, due_wall_ns, message.topic(), message.qos(), message.retain(),
             std::nullopt, will.properties != nullptr ? &will.properties->properties : nullptr,
             message.payload(), record_scratch_);
  AppendScratch(kRecordWill);
}

void BrokerShard::LogWillDone(Session& session) {
  if (!session.logged) return;
  record_scratch_.clear();
  EncodeClientOnly(session.client_id, record_scratch_);
  AppendScratch(kRecordWillDone);
}

void BrokerShard::SendWhenStored(Session& session, uint16_t packet_id, uint64_t item,
                                 uint64_t origin) {
  if (origin != 0) {
    // A copy of a QoS 2 message its publisher has not committed: held until
    // it has (kMailCommitted), or a crash could bring back a PUBLISH that
    // was sent while recovery drops this copy, and the message would come
    // twice.
    held_for_commit_[origin].push_back({session.client_id, &session, packet_id, item});
    return;
  }
  log_->WhenDurable(
      [this, client_id = session.client_id, key = &session, packet_id, item](absl::Status status) {
        ReleaseHeld(client_id, key, packet_id, item, status.ok());
      });
}

void BrokerShard::OnCommitted(uint64_t origin) {
  pending_origins_.erase(origin);
  auto it = held_for_commit_.find(origin);
  if (it == held_for_commit_.end()) return;
  std::vector<HeldCopy> copies = std::move(it->second);
  held_for_commit_.erase(it);
  for (const HeldCopy& copy : copies) {
    ReleaseHeld(copy.client_id, copy.session, copy.packet_id, copy.item, true);
  }
}

void BrokerShard::ReleaseHeld(const std::string& client_id, const Session* key, uint16_t packet_id,
                              uint64_t item, bool stored) {
  auto it = sessions_.find(client_id);
  if (it == sessions_.end() || it->second.get() != key) return;  // the session ended
  Session& s = *it->second;
  auto inflight = s.inflight.find(packet_id);
  if (inflight == s.inflight.end() || inflight->second.log_item != item ||
      !inflight->second.awaiting_store) {
    return;
  }
  if (!stored) {
    // Not stored: sent all the same (the client is owed it), with only the
    // exactly-once promise across a crash lost; the log said why.
    SHARDMQ_LOG_THROTTLED(kWarning, "sending a QoS 2 message to %s that could not be stored",
                          client_id);
  }
  InflightMessage& message = inflight->second;
  message.awaiting_store = false;
  Connection* conn = s.connection;
  if (conn == nullptr || conn->state != Connection::State::kConnected) return;  // resent later
  if (!SendPublish(*conn, *message.message, message.qos, packet_id, false, message.retain,
                   message.subscription_ids)) {
    LogItem(kRecordDone, item);
    s.inflight.erase(inflight);
  }
  // What waited behind it follows, in order.
  PumpQueue(s);
}

bool BrokerShard::HoldsUnsent(const Session& session) const {
  if (!session.logged || !AcksWaitForLog()) return false;
  for (const auto& [packet_id, inflight] : session.inflight) {
    if (inflight.awaiting_store) return true;
  }
  return false;
}

void BrokerShard::RestoreSessions() {
  const int self = shard_.id();
  // Other shards' filters, known before anything is served: a publish here
  // must reach a restored subscriber there from the first moment.
  for (const auto& [filter, home] : context_.recovered_interest) {
    if (home != self) interest_.Add(filter, static_cast<uint32_t>(home));
  }
  for (const auto& [group, members] : context_.recovered_shared_members) {
    SharedGroupState& state = shared_groups_[group];
    state.members = members;
  }
  std::vector<RecoveredSession> recovered =
      std::move(context_.recovered_sessions[static_cast<size_t>(self)]);
  const int64_t wall = WallNowNs();
  for (RecoveredSession& r : recovered) {
    Session& session = sessions_.Add(std::make_unique<Session>(r.client_id));
    session.persistent = true;
    session.logged = true;
    session.expiry_interval = r.expiry_interval;
    commit_marks_[&session] = r.commit_mark;
    if (!context_.hooks.empty()) {
      // Hooks (the ACL among them) know an offline session by its user name.
      SessionExtra& extra = EnsureExtra(&session);
      extra.username = std::move(r.username);
      extra.protocol_version = r.protocol_version;
    }
    for (const auto& [filter, options] : r.subscriptions) {
      session.subscriptions[filter] = SessionSubscription{options};
      index_.Subscribe(reinterpret_cast<topic::SubscriberId>(&session), filter, options);
    }
    uint16_t last_packet_id = 0;
    for (RecoveredItem& item : r.items) {
      // The item keeps the number its records have in this shard's log
      // (a rewrite renumbered them before the shards started).
      if (item.packet_id != 0 && !session.inflight.contains(item.packet_id)) {
        InflightMessage inflight{std::move(item.message), item.qos, item.retain, item.released,
                                 session.next_sequence++};
        inflight.subscription_ids.assign(item.subscription_ids.begin(),
                                         item.subscription_ids.end());
        if (!item.shared_group.empty()) {
          inflight.shared_group = std::make_unique<std::string>(item.shared_group);
        }
        inflight.log_item = item.number;
        last_packet_id = item.packet_id;
        session.inflight.emplace(item.packet_id, std::move(inflight));
        continue;
      }
      if (!item.message && !item.spilled) continue;  // a released id that clashed: nothing to send
      QueuedMessage queued{std::move(item.message), item.qos, item.retain};
      queued.subscription_ids.assign(item.subscription_ids.begin(), item.subscription_ids.end());
      if (!item.shared_group.empty()) {
        queued.shared_group = std::make_unique<std::string>(item.shared_group);
      }
      queued.log_item = item.number;
      if (item.spilled) {
        // Left in the log by recovery (over --max-memory, or so before).
        queued.spilled = SpillRecovered(*item.spilled);
        queued.bytes = item.spilled->length;  // the topic and payload are not known yet
      } else {
        queued.bytes = static_cast<uint32_t>(queued.message->payload().size() +
                                             queued.message->topic().size());
        ChargeQueued(queued, true);
      }
      session.queued_bytes += queued.bytes;
      session.queue.push_back(std::move(queued));
    }
    if (last_packet_id != 0) {
      session.next_packet_id = last_packet_id == 65535 ? 1 : last_packet_id + 1;
    }
    session.inbound_qos2.insert(r.inbound_qos2.begin(), r.inbound_qos2.end());
    // Copies recovery dropped as never committed stay dropped (their records
    // are in this shard's log, unless a rewrite left them out).
    for (uint64_t item : r.dropped_items) LogItem(kRecordDone, item);
    // Offline from the moment it went (or, if it was connected when the log
    // ended, from now): its expiry counts what is left.
    const int64_t since = r.offline_since_ns.value_or(wall);
    if (session.expiry_interval != Session::kNeverExpires) {
      const int64_t left_ns = since + int64_t{session.expiry_interval} * 1'000'000'000 - wall;
      SessionWentOffline(
          session, since,
          static_cast<uint32_t>(std::max<int64_t>(0, (left_ns + 999'999'999) / 1'000'000'000)));
    }
    if (r.will) {
      // A will still waiting out its delay: due when it was, at once if
      // that passed while the broker was down.
      mqtt::Properties properties;
      if (!r.will->properties.empty()) {
        properties = records::DecodePropertiesBody(records::AsBytes(r.will->properties))
                         .value_or(mqtt::Properties{});
      }
      auto will = std::make_unique<WillMessage>();
      Message::Fields fields;
      fields.topic = r.will->topic;
      fields.payload = records::AsBytes(r.will->payload);
      fields.qos = r.will->qos;
      fields.retain = r.will->retain;
      fields.publisher = session.client_id;
      will->message = MessageRef::Adopt(Message::Make(fields));
      will->properties = std::make_unique<WillProperties>(properties);
      const int64_t left_ns = r.will->due_wall_ns - wall;
      const auto delay =
          static_cast<uint32_t>(std::max<int64_t>(0, (left_ns + 999'999'999) / 1'000'000'000));
      will->delay_interval = delay;
      DelayWill(session, std::move(will), delay, r.will->due_wall_ns);
    }
  }
  if (!recovered.empty()) InvalidateRoutes();
}

}  // namespace shardmq::broker
