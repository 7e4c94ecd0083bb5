// SUBSCRIBE and UNSUBSCRIBE, and keeping other shards' interest maps in step.
//
// A subscription to a filter this shard had no subscriber for must be known
// to every other shard before SUBACK goes out: otherwise a client could get
// its SUBACK, have another client publish on another shard, and miss the
// message. So new filters are announced (kMailInterestAdd), each shard
// acknowledges, and SUBACK waits for the acknowledgements: one mailbox round
// trip, paid only when a filter's local count goes 0 -> 1.
#include <algorithm>

#include "broker/broker_shard.h"
#include "broker/mail.h"
#include "mqtt/topic_validation.h"

namespace shardmq::broker {

void BrokerShard::HandleSubscribe(Connection& conn, const mqtt::Subscribe& subscribe) {
  Session& session = *conn.session;
  const bool v5 = conn.version == mqtt::ProtocolVersion::kV5;
  mqtt::TopicLimits limits;
  limits.max_length = context_.limits.max_topic_length;
  limits.max_levels = context_.limits.max_topic_levels;

  PendingSuback pending;
  pending.conn = conn.id;
  pending.session = &session;
  pending.packet_id = subscribe.packet_id;
  const uint64_t token = next_token_++;
  for (const mqtt::Subscription& entry : subscribe.subscriptions) {
    std::string filter(entry.filter);
    if (mqtt::ValidateTopicFilter(filter, limits) != mqtt::TopicError::kOk) {
      pending.codes.push_back(v5 ? mqtt::ReasonCode::kTopicFilterInvalid
                                 : mqtt::ReasonCode::kUnspecifiedError);
      continue;
    }
    if (std::find(context_.limits.denied_filters.begin(), context_.limits.denied_filters.end(),
                  filter) != context_.limits.denied_filters.end()) {
      pending.codes.push_back(v5 ? mqtt::ReasonCode::kNotAuthorized
                                 : mqtt::ReasonCode::kUnspecifiedError);
      continue;
    }
    if (v5 && mqtt::IsSharedSubscription(filter)) {
      // Advertised as unavailable in CONNACK [MQTT-3.8.3-4 region, 0x9E].
      pending.codes.push_back(mqtt::ReasonCode::kSharedSubscriptionsNotSupported);
      continue;
    }
    if (!session.subscriptions.contains(filter) &&
        session.subscriptions.size() >= context_.limits.max_subscriptions_per_client) {
      pending.codes.push_back(v5 ? mqtt::ReasonCode::kQuotaExceeded
                                 : mqtt::ReasonCode::kUnspecifiedError);
      continue;
    }
    uint8_t granted = std::min<uint8_t>(entry.options.qos, 2);
    AddSubscription(session, filter, granted, &pending, token);
    pending.codes.push_back(static_cast<mqtt::ReasonCode>(granted));
  }
  if (pending.acks_missing > 0) {
    pending_subacks_.emplace(token, std::move(pending));
  } else {
    FinishSuback(pending);
  }
}

void BrokerShard::AddSubscription(Session& session, const std::string& filter, uint8_t qos,
                                  PendingSuback* pending, uint64_t token) {
  // A second SUBSCRIBE to the same filter replaces the first
  // [MQTT-3.8.4-3]; retained messages are sent again either way.
  session.subscriptions[filter] = SessionSubscription{qos};
  topic::SubscriptionOptions options;
  options.qos = qos;
  topic::SubscribeResult result =
      index_.Subscribe(reinterpret_cast<topic::SubscriberId>(&session), filter, options);
  InvalidateRoutes();
  if (result.filter_became_active && shard_.shard_count() > 1) {
    BroadcastInterest(kMailInterestAdd, filter, token);
    pending->acks_missing += shard_.shard_count() - 1;
  }
  pending->granted.emplace_back(filter, qos);
}

void BrokerShard::RemoveSubscription(Session& session, const std::string& filter) {
  session.subscriptions.erase(filter);
  topic::UnsubscribeResult result =
      index_.Unsubscribe(reinterpret_cast<topic::SubscriberId>(&session), filter);
  InvalidateRoutes();
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
    shard_.Post(target, item);
  }
}

void BrokerShard::FinishSuback(PendingSuback& pending) {
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
  for (const auto& [filter, qos] : pending.granted) SendRetained(*pending.session, filter, qos);
}

void BrokerShard::SendRetained(Session& session, std::string_view filter, uint8_t qos) {
  retained_.MatchFilter(filter, [&](std::string_view, const MessageRef& message) {
    Deliver(session, message, std::min(qos, message->qos()), /*retain=*/true);
  });
}

void BrokerShard::HandleUnsubscribe(Connection& conn, const mqtt::Unsubscribe& unsubscribe) {
  Session& session = *conn.session;
  mqtt::Unsuback unsuback;
  unsuback.packet_id = unsubscribe.packet_id;
  for (std::string_view filter_view : unsubscribe.topic_filters) {
    std::string filter(filter_view);
    bool existed = session.subscriptions.contains(filter);
    if (existed) RemoveSubscription(session, filter);
    unsuback.reason_codes.push_back(existed ? mqtt::ReasonCode::kSuccess
                                            : mqtt::ReasonCode::kNoSubscriptionExisted);
  }
  SendPacket(conn, unsuback);
}

}  // namespace shardmq::broker
