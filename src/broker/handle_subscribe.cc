// SUBSCRIBE and UNSUBSCRIBE, and keeping other shards' interest maps in step.
//
// A subscription to a filter this shard had no subscriber for must be known
// to every other shard before SUBACK goes out: otherwise a client could get
// its SUBACK, have another client publish on another shard, and miss the
// message. So new filters are announced (kMailInterestAdd), each shard
// acknowledges, and SUBACK waits for the acknowledgements: one mailbox round
// trip, paid only when a filter's local count goes 0 -> 1.
#include <algorithm>

#include "base/log_throttle.h"
#include "broker/broker_shard.h"
#include "broker/mail.h"
#include "mqtt/topic_validation.h"

namespace shardmq::broker {

void BrokerShard::HandleSubscribe(Connection& conn, const mqtt::Subscribe& subscribe) {
  Session& session = *conn.session;
  const bool v5 = conn.version == mqtt::ProtocolVersion::kV5;
  mqtt::TopicLimits limits;
  limits.max_length = limits_.max_topic_length;
  limits.max_levels = limits_.max_topic_levels;

  PendingSuback pending;
  pending.conn = conn.id;
  pending.session = &session;
  pending.packet_id = subscribe.packet_id;
  const uint64_t token = next_token_++;
  for (const mqtt::Subscription& entry : subscribe.subscriptions) {
    std::string filter(entry.filter);
    // "$share/{group}/{filter}" is a shared subscription for 3.1.1 clients
    // too, as users of other brokers expect (3.1.1 has no rule against it).
    if (mqtt::ValidateSubscriptionFilter(filter, limits) != mqtt::TopicError::kOk) {
      pending.codes.push_back(v5 ? mqtt::ReasonCode::kTopicFilterInvalid
                                 : mqtt::ReasonCode::kUnspecifiedError);
      continue;
    }
    if (std::find(limits_.denied_filters.begin(), limits_.denied_filters.end(), filter) !=
        limits_.denied_filters.end()) {
      // 0x80 in both versions: a refusal by configuration, not an ACL
      // decision (the ACL file answers 0x87); the Paho suite expects 0x80.
      pending.codes.push_back(mqtt::ReasonCode::kUnspecifiedError);
      continue;
    }
    if (v5 && entry.options.no_local && mqtt::IsSharedSubscription(filter)) {
      // [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error.
      ProtocolClose(conn, mqtt::ReasonCode::kProtocolError, "no local on a shared subscription");
      return;
    }
    if (!session.subscriptions.contains(filter) &&
        session.subscriptions.size() >= limits_.max_subscriptions_per_client) {
      pending.codes.push_back(v5 ? mqtt::ReasonCode::kQuotaExceeded
                                 : mqtt::ReasonCode::kUnspecifiedError);
      ShardStats::Inc(stats_.subscriptions_refused_quota);
      SHARDMQ_LOG_THROTTLED(kWarning,
                            "refusing a subscription of %s: it holds %d filters, the most "
                            "allowed (--max-subscriptions-per-client)",
                            session.client_id, session.subscriptions.size());
      continue;
    }
    topic::SubscriptionOptions options;
    // Granted at most the Maximum QoS CONNACK announced (section 3.2.2.3.4).
    options.qos = std::min<uint8_t>(entry.options.qos, limits_.max_qos);
    if (HooksWant(kHookSubscribe)) [[unlikely]] {
      // The subscribe ACL: refuse (0x87 in MQTT 5, 0x80 in 3.x) or downgrade.
      SubscribeRequest request;
      request.filter = filter;
      request.qos = options.qos;
      request.subscription_count =
          session.subscriptions.size() - (session.subscriptions.contains(filter) ? 1 : 0);
      request.shared = mqtt::IsSharedSubscription(filter);
      Decision decision = context_.hooks.Subscribe(InfoFor(session), request);
      if (decision.kind == Decision::Kind::kDeny) {
        pending.codes.push_back(v5 ? (decision.reason_code >= 0x80
                                          ? static_cast<mqtt::ReasonCode>(decision.reason_code)
                                          : mqtt::ReasonCode::kNotAuthorized)
                                   : mqtt::ReasonCode::kUnspecifiedError);
        continue;
      }
      options.qos = request.qos;
    }
    if (v5) {
      options.no_local = entry.options.no_local;
      options.retain_as_published = entry.options.retain_as_published;
      options.retain_handling = entry.options.retain_handling;
      // One identifier per SUBSCRIBE, for all of its filters (section 3.8.2.1.2).
      if (!subscribe.properties.subscription_identifiers.empty()) {
        options.subscription_id = subscribe.properties.subscription_identifiers.front();
      }
    }
    AddSubscription(session, filter, options, &pending, token);
    pending.codes.push_back(static_cast<mqtt::ReasonCode>(options.qos));
    if (HooksWant(kHookSubscribe)) context_.hooks.Subscribed(InfoFor(session), filter, options.qos);
  }
  // With `sync`, a persistent session's SUBACK also waits for its
  // subscriptions to be on disk.
  const bool wait_for_log = AcksWaitForLog() && session.logged;
  if (wait_for_log) ++pending.acks_missing;
  if (pending.acks_missing > 0) {
    pending_subacks_.emplace(token, std::move(pending));
    if (wait_for_log) log_->WhenDurable([this, token](absl::Status) { SubackPartDone(token); });
  } else {
    FinishSuback(pending);
  }
}

void BrokerShard::SubackPartDone(uint64_t token) {
  auto it = pending_subacks_.find(token);
  if (it == pending_subacks_.end()) return;
  if (--it->second.acks_missing == 0) {
    PendingSuback pending = std::move(it->second);
    pending_subacks_.erase(it);
    FinishSuback(pending);
  }
}

void BrokerShard::AddSubscription(Session& session, const std::string& filter,
                                  const topic::SubscriptionOptions& options, PendingSuback* pending,
                                  uint64_t token) {
  // A second SUBSCRIBE to the same filter replaces the first [MQTT-3.8.4-3].
  session.subscriptions[filter] = SessionSubscription{options};
  LogSubscribe(session, filter, options);
  if (context_.redis != nullptr) [[unlikely]]
    ClusterSubscriptionChanged(session, filter, &options);
  topic::SubscribeResult result =
      index_.Subscribe(reinterpret_cast<topic::SubscriberId>(&session), filter, options);
  InvalidateRoutes();
  if (result.filter_became_active && context_.cluster != nullptr) [[unlikely]] {
    ClusterInterest(filter, true, pending, token);
  }
  if (result.filter_became_active && shard_.shard_count() > 1) {
    BroadcastInterest(kMailInterestAdd, filter, token);
    pending->acks_missing += shard_.shard_count() - 1;
  }
  if (!result.replaced_existing && mqtt::IsSharedSubscription(filter)) {
    AnnounceSharedCount(filter);
  }
  // Retained messages follow SUBACK unless Retain Handling says never (2) or
  // only for a new subscription (1) and this one existed [MQTT-3.3.1-9,
  // -10, -11]. Shared subscriptions get none (section 4.8.2).
  const bool send_retained =
      options.retain_handling == 0 || (options.retain_handling == 1 && !result.replaced_existing);
  if (send_retained && !mqtt::IsSharedSubscription(filter)) {
    pending->retained_for.emplace_back(filter, options);
  }
}

void BrokerShard::RemoveSubscription(Session& session, const std::string& filter) {
  session.subscriptions.erase(filter);
  LogUnsubscribe(session, filter);
  if (context_.redis != nullptr) [[unlikely]]
    ClusterSubscriptionChanged(session, filter, nullptr);
  topic::UnsubscribeResult result =
      index_.Unsubscribe(reinterpret_cast<topic::SubscriberId>(&session), filter);
  InvalidateRoutes();
  if (result.existed && mqtt::IsSharedSubscription(filter)) AnnounceSharedCount(filter);
  if (result.filter_became_inactive && context_.cluster != nullptr) [[unlikely]] {
    ClusterInterest(filter, false);
  }
  if (result.filter_became_inactive && shard_.shard_count() > 1) {
    BroadcastInterest(kMailInterestRemove, filter, 0);
  }
}

void BrokerShard::BroadcastInterest(MailKind kind, const std::string& filter, uint64_t token) {
  for (int target = 0; target < shard_.shard_count(); ++target) {
    if (target == shard_.id()) continue;
    shard::MailItem item;
    item.kind = kind;
    item.ptr = new InterestChange{filter, token};
    PostMail(target, item);
  }
}

void BrokerShard::FinishSuback(PendingSuback& pending) {
  if (pending.inline_done) {
    // An InlineClient: its retained messages, then the outcome. The session
    // may have ended while the interest acks travelled.
    auto it = sessions_.find(pending.inline_client_id);
    if (it != sessions_.end() && it->second.get() == pending.session) {
      for (const auto& [filter, options] : pending.retained_for) {
        SendRetained(*pending.session, filter, options);
      }
    }
    pending.inline_done(static_cast<uint8_t>(
        pending.codes.empty() ? mqtt::ReasonCode::kUnspecifiedError : pending.codes[0]));
    return;
  }
  Connection* conn = Find(pending.conn);
  if (conn == nullptr || conn->session != pending.session ||
      conn->state != Connection::State::kConnected) {
    return;  // the client left meanwhile; its subscriptions stay with its session
  }
  mqtt::Suback suback;
  suback.packet_id = pending.packet_id;
  suback.reason_codes.assign(pending.codes.begin(), pending.codes.end());
  SendPacket(*conn, suback);
  // Retained messages follow the SUBACK, flagged RETAIN [MQTT-3.3.1-6, MQTT-3.3.1-8].
  for (const auto& [filter, options] : pending.retained_for) {
    SendRetained(*pending.session, filter, options);
  }
}

void BrokerShard::SendRetained(Session& session, std::string_view filter,
                               const topic::SubscriptionOptions& options) {
  const shard::Clock::time_point now = shard_.Now();
  uint32_t id_storage = options.subscription_id;
  absl::Span<const uint32_t> ids(&id_storage, options.subscription_id != 0 ? 1 : 0);
  std::vector<std::string> expired;
  retained_.MatchFilter(filter, [&](std::string_view topic, const MessageRef& message) {
    // An expired retained message is no longer retained [MQTT-3.3.2-5].
    // (Each shard has its copy and forgets it on its own when it notices.)
    if (message->Expired(now)) {
      expired.emplace_back(topic);
      return;
    }
    const uint8_t qos = std::min(options.qos, message->qos());
    if (qos > 0 && session.connection != nullptr &&
        (retained_backlog_.contains(&session) || OverHighWatermark(session))) {
      // More than the queue should take at once: the rest follows as it
      // drains, after what is already waiting.
      retained_backlog_[&session].push_back({message, qos, options.subscription_id});
      return;
    }
    Deliver(session, message, qos, /*retain=*/true, ids);
  });
  for (const std::string& topic : expired) retained_.Erase(topic);
}

void BrokerShard::FeedRetainedBacklog(Session& session) {
  const shard::Clock::time_point now = shard_.Now();
  // Looked up again after every Deliver, which may feed (and erase) this very
  // backlog itself: a QoS 2 copy that a failed log releases at once pumps
  // the queue, and the pump feeds the backlog.
  for (;;) {
    auto it = retained_backlog_.find(&session);
    if (it == retained_backlog_.end()) return;
    std::deque<RetainedBacklogEntry>& backlog = it->second;
    if (backlog.empty()) {
      retained_backlog_.erase(it);
      return;
    }
    if (OverHighWatermark(session)) return;
    RetainedBacklogEntry entry = std::move(backlog.front());
    backlog.pop_front();
    if (entry.message->Expired(now)) continue;  // no longer retained [MQTT-3.3.2-5]
    absl::Span<const uint32_t> ids(&entry.subscription_id, entry.subscription_id != 0 ? 1 : 0);
    Deliver(session, entry.message, entry.qos, /*retain=*/true, ids);
  }
}

void BrokerShard::SettleRetainedBacklog(Session& session, bool keep) {
  auto it = retained_backlog_.find(&session);
  if (it == retained_backlog_.end()) return;
  std::deque<RetainedBacklogEntry> backlog = std::move(it->second);
  retained_backlog_.erase(it);
  if (!keep) return;
  for (RetainedBacklogEntry& entry : backlog) {
    absl::Span<const uint32_t> ids(&entry.subscription_id, entry.subscription_id != 0 ? 1 : 0);
    Enqueue(session, entry.message, entry.qos, /*retain=*/true, ids);
  }
}

void BrokerShard::HandleUnsubscribe(Connection& conn, const mqtt::Unsubscribe& unsubscribe) {
  Session& session = *conn.session;
  mqtt::Unsuback unsuback;
  unsuback.packet_id = unsubscribe.packet_id;
  for (std::string_view filter_view : unsubscribe.topic_filters) {
    std::string filter(filter_view);
    bool existed = session.subscriptions.contains(filter);
    if (HooksWant(kHookSubscribe)) [[unlikely]] {
      Decision decision = context_.hooks.Unsubscribe(InfoFor(session), filter);
      if (decision.kind == Decision::Kind::kDeny) {
        // 3.x UNSUBACK carries no codes: the subscription simply stays.
        unsuback.reason_codes.push_back(mqtt::ReasonCode::kNotAuthorized);
        continue;
      }
    }
    if (existed) RemoveSubscription(session, filter);
    if (HooksWant(kHookSubscribe)) context_.hooks.Unsubscribed(InfoFor(session), filter, existed);
    unsuback.reason_codes.push_back(existed ? mqtt::ReasonCode::kSuccess
                                            : mqtt::ReasonCode::kNoSubscriptionExisted);
  }
  // With `sync`, once the removal is stored.
  SendWhenLogged(conn, unsuback);
}

}  // namespace shardmq::broker
