// CONNECT, DISCONNECT, keep-alive, wills and the end of sessions.
#include "base/log.h"
#include "broker/broker_shard.h"
#include "broker/client_id.h"

namespace shardmq::broker {

void BrokerShard::HandleConnect(Connection& conn, const mqtt::Connect& connect) {
  conn.version = connect.version;
  ShardStats::Inc(stats_.connects);

  std::string client_id(connect.client_id);
  bool assigned_id = false;
  if (client_id.empty()) {
    // 3.1.1 lets the server assign an id only to a clean session
    // [MQTT-3.1.3-7, MQTT-3.1.3-8]; 3.1 requires 1 to 23 characters.
    if (connect.version == mqtt::ProtocolVersion::kV31 ||
        (connect.version == mqtt::ProtocolVersion::kV311 && !connect.clean_start)) {
      ConnackAndClose(conn, connect.version, mqtt::ReasonCode::kClientIdentifierNotValid);
      return;
    }
    client_id = GenerateClientId(shard_.id(), shard_.shard_count(), &generated_ids_);
    assigned_id = true;
  } else if (connect.version == mqtt::ProtocolVersion::kV31 && client_id.size() > 23) {
    ConnackAndClose(conn, connect.version, mqtt::ReasonCode::kClientIdentifierNotValid);
    return;
  }

  if (connect.will.has_value()) {
    Message::Fields fields;
    fields.topic = connect.will->topic;
    fields.payload = connect.will->payload;
    fields.qos = connect.will->qos;
    fields.retain = connect.will->retain;
    fields.publisher = client_id;
    WillMessage will;
    if (connect.version == mqtt::ProtocolVersion::kV5) {
      // The will's expiry interval starts when it is published, not now
      // [MQTT-3.1.3-?, 3.1.3.2.4]: kept aside and applied in PublishWill.
      mqtt::Properties properties = connect.will->properties;
      will.expiry_interval = properties.message_expiry_interval;
      properties.message_expiry_interval.reset();
      fields.properties = &properties;
      will.message = MessageRef::Adopt(Message::Make(fields));
    } else {
      will.message = MessageRef::Adopt(Message::Make(fields));
    }
    conn.will = std::move(will);
  }

  // The session: resumed, taken over, or new [MQTT-3.1.2-4..6].
  Session* session = nullptr;
  bool session_present = false;
  if (auto it = sessions_.find(client_id); it != sessions_.end()) {
    session = it->second.get();
    if (Connection* old = session->connection; old != nullptr) {
      // Only one connection per client id [MQTT-3.1.4-2]: the old one goes,
      // and as it did not DISCONNECT, its will is published.
      ShardStats::Inc(stats_.takeovers);
      if (old->version == mqtt::ProtocolVersion::kV5) {
        mqtt::Disconnect disconnect;
        disconnect.reason_code = mqtt::ReasonCode::kSessionTakenOver;
        SendPacket(*old, disconnect);
      }
      if (old->will.has_value()) PublishWill(*old);
      old->will.reset();
      old->session = nullptr;
      old->state = Connection::State::kClosing;
      session->connection = nullptr;
      shard_.Close(old->id);
    }
    // A session whose connection asked for no persistence ended with that
    // connection, even if the new CONNECT raced ahead of its DISCONNECT.
    if (connect.clean_start || !session->persistent) {
      EndSession(*session);
      session = nullptr;
    } else {
      session_present = true;
    }
  }
  if (session == nullptr) {
    auto created = std::make_unique<Session>(client_id);
    session = created.get();
    sessions_.emplace(client_id, std::move(created));
  }
  session->persistent = connect.version == mqtt::ProtocolVersion::kV5
                            ? connect.properties.session_expiry_interval.value_or(0) > 0
                            : !connect.clean_start;
  session->connection = &conn;
  conn.session = session;
  conn.state = Connection::State::kConnected;
  conn.keep_alive = connect.keep_alive;
  if (connect.version == mqtt::ProtocolVersion::kV5) {
    const mqtt::Properties& asked = connect.properties;
    conn.client_max_packet_size = asked.maximum_packet_size.value_or(UINT32_MAX);
    conn.client_receive_maximum = asked.receive_maximum.value_or(65535);
    conn.client_topic_alias_maximum = asked.topic_alias_maximum.value_or(0);
  }

  conn.decoder.set_protocol_version(connect.version);
  // Congested subscribers may still be holding this client id back.
  ApplyPauseState(conn);

  mqtt::Connack connack;
  connack.session_present = session_present;
  if (connect.version == mqtt::ProtocolVersion::kV5) {
    if (assigned_id) connack.properties.assigned_client_identifier = session->client_id;
    connack.properties.maximum_packet_size = context_.limits.max_packet_size;
    connack.properties.topic_alias_maximum = context_.limits.topic_alias_maximum;
    connack.properties.shared_subscription_available = 1;
  }
  SendPacket(conn, connack);

  if (conn.keep_alive > 0) {
    // [MQTT-3.1.2-24]: one and a half times the Keep Alive without a packet.
    ArmKeepAlive(conn.id, std::chrono::milliseconds(conn.keep_alive * 1500));
  }
  if (session_present) {
    // Unacknowledged PUBLISH and PUBREL packets go again first, with their
    // original packet ids [MQTT-4.4.0-1], then whatever queued meanwhile.
    ResendInflight(*session);
    PumpQueue(*session);
  }
}

void BrokerShard::ArmKeepAlive(shard::ConnId id, shard::Clock::duration delay) {
  Connection* conn = Find(id);
  if (conn == nullptr) return;
  conn->keep_alive_timer = shard_.ScheduleTimer(delay, [this, id] {
    Connection* c = Find(id);
    if (c == nullptr || c->state != Connection::State::kConnected) return;
    c->keep_alive_timer = {};
    auto limit = std::chrono::milliseconds(c->keep_alive * 1500);
    // While back-pressure holds its reading, the client's PINGREQs wait
    // unread in the socket: that silence is ours, not the client's.
    if (c->reading_paused) c->last_packet = shard_.Now();
    auto idle = shard_.Now() - c->last_packet;
    if (idle >= limit) {
      ShardStats::Inc(stats_.keepalive_timeouts);
      ProtocolClose(*c, mqtt::ReasonCode::kKeepAliveTimeout, "keep-alive timeout");
    } else {
      ArmKeepAlive(id, limit - idle);
    }
  });
}

void BrokerShard::HandleDisconnect(Connection& conn, const mqtt::Disconnect& disconnect) {
  // A clean DISCONNECT discards the will [MQTT-3.1.2-10], except MQTT 5's
  // "disconnect with will message" (0x04).
  if (conn.version != mqtt::ProtocolVersion::kV5 ||
      disconnect.reason_code != mqtt::ReasonCode::kDisconnectWithWillMessage) {
    conn.will.reset();
  }
  DetachSession(conn, /*publish_will=*/true);
  conn.state = Connection::State::kClosing;
  shard_.Close(conn.id);
}

void BrokerShard::DetachSession(Connection& conn, bool publish_will) {
  if (publish_will && conn.will.has_value()) PublishWill(conn);
  conn.will.reset();
  Session* session = conn.session;
  if (session == nullptr) return;
  conn.session = nullptr;
  session->connection = nullptr;
  // An offline session drops at its bound instead of holding publishers back.
  ReleaseBackpressure(*session);
  // What it got through shared subscriptions and did not acknowledge goes
  // to the other members now.
  RedeliverShared(*session);
  if (!session->persistent) EndSession(*session);
}

void BrokerShard::PublishWill(Connection& conn) {
  ShardStats::Inc(stats_.wills_published);
  MessageRef will = std::move(conn.will->message);
  std::optional<uint32_t> expiry_interval = conn.will->expiry_interval;
  conn.will.reset();
  Message::Fields fields{will->topic(), will->payload(), will->qos(), will->retain(),
                         will->publisher()};
  mqtt::Properties properties;
  if (will->properties() != nullptr || expiry_interval.has_value()) {
    if (will->properties() != nullptr) properties = *will->properties();
    properties.message_expiry_interval = expiry_interval;
    fields.properties = &properties;
  }
  Route(fields);
}

void BrokerShard::EndSession(Session& session) {
  RedeliverShared(session);
  // Copy the filters first: RemoveSubscription edits the map.
  std::vector<std::string> filters;
  filters.reserve(session.subscriptions.size());
  for (const auto& [filter, options] : session.subscriptions) filters.push_back(filter);
  for (const std::string& filter : filters) RemoveSubscription(session, filter);
  ReleaseBackpressure(session);
  if (session.connection != nullptr) session.connection->session = nullptr;
  std::string client_id = session.client_id;
  sessions_.erase(client_id);  // destroys the session
}

}  // namespace shardmq::broker
