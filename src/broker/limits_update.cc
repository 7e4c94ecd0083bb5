// BrokerShard's side of Broker::SetLimits: limits that change while clients
// are connected. What a CONNACK told a client binds it until it reconnects;
// everything else applies at once.
#include <memory>

#include "broker/broker_shard.h"
#include "broker/publish_throttle.h"

namespace shardmq::broker {

namespace {
ClientLimits GlobalRates(const Limits& limits) {
  return {limits.max_publish_rate, limits.max_publish_bytes_rate};
}
}  // namespace

void BrokerShard::SetDecodeOptions() {
  // New connections decode CONNECT with these, and keep the Maximum Packet
  // Size that their CONNACK then advertises (BindConnectLimits).
  decode_options_.max_packet_size = limits_.max_packet_size;
  decode_options_.topic_limits.max_length = limits_.max_topic_length;
  decode_options_.topic_limits.max_levels = limits_.max_topic_levels;
  // Bad filters are refused one by one in SUBACK (HandleSubscribe).
  decode_options_.validate_subscribe_filters = false;
  // A UTF-8 payload that is not is a DISCONNECT 0x99, if the operator wants
  // the check (3.3.2.3.2 lets the receiver choose).
  decode_options_.validate_utf8_payload = limits_.validate_utf8_payload;
}

void BrokerShard::ApplyLimits(const Limits& limits) {
  limits_ = limits;
  SetDecodeOptions();
  // Connections still before CONNECT pick the new values up in
  // BindConnectLimits; connected ones are reached through their sessions.
  for (auto& [client_id, session] : sessions_) {
    Connection* conn = session->connection;
    if (conn != nullptr && conn->state == Connection::State::kConnected) {
      RefreshConnectionLimits(*conn);
    }
  }
}

void BrokerShard::RefreshConnectionLimits(Connection& conn) {
  conn.decoder.set_content_checks(decode_options_.topic_limits,
                                  decode_options_.validate_utf8_payload);
  const ClientLimits own = conn.throttle != nullptr ? conn.throttle->own : ClientLimits{};
  const ClientLimits effective = PublishThrottle::Effective(own, GlobalRates(limits_));
  if (conn.throttle != nullptr) {
    // Kept even when no rate applies any more: it may hold input (holding)
    // that its resume timer will decode, and then counts nothing.
    conn.throttle->SetLimits(effective);
  } else if (PublishThrottle::Applies(effective)) {
    conn.throttle = std::make_unique<PublishThrottle>(effective, own);
  }
}

void BrokerShard::BindConnectLimits(Connection& conn, const ClientLimits& decided) {
  conn.advertised.receive_maximum = limits_.receive_maximum;
  conn.advertised.topic_alias_maximum = limits_.topic_alias_maximum;
  conn.advertised.max_qos = limits_.max_qos;
  conn.advertised.retain_available = limits_.retain_available;
  // The decoder was made when the socket opened; the limits may have
  // changed since, and the CONNACK advertises today's.
  conn.decoder.set_max_packet_size(limits_.max_packet_size);
  conn.decoder.set_content_checks(decode_options_.topic_limits,
                                  decode_options_.validate_utf8_payload);
  // The hooks' decision stands as they made it; their own values remain the
  // ceiling if the global rates change later (RefreshConnectionLimits).
  if (PublishThrottle::Applies(decided)) {
    conn.throttle = std::make_unique<PublishThrottle>(
        decided, PublishThrottle::OwnOf(decided, GlobalRates(limits_)));
  }
}

}  // namespace shardmq::broker
