// PUBLISH from a client and the acknowledgements of QoS 1/2 flows in both
// directions (MQTT 3.1.1 section 4.3, MQTT 5 section 4.3).
#include "broker/broker_shard.h"
#include "broker/session_records.h"

namespace shardmq::broker {

std::optional<std::string_view> BrokerShard::ResolveTopicAlias(Connection& conn,
                                                               const mqtt::Publish& publish) {
  if (!publish.properties.topic_alias.has_value()) {
    // Without an alias the topic must be there [MQTT-3.3.2-1].
    if (publish.topic.empty()) {
      ProtocolClose(conn, mqtt::ReasonCode::kProtocolError, "empty topic without a topic alias");
      return std::nullopt;
    }
    return publish.topic;
  }
  const uint16_t alias = *publish.properties.topic_alias;
  if (alias > conn.advertised.topic_alias_maximum) {
    // 0 or above the maximum we offered in CONNACK [MQTT-3.3.2-9, -10].
    ProtocolClose(conn, mqtt::ReasonCode::kTopicAliasInvalid, "topic alias above the maximum");
    return std::nullopt;
  }
  auto& inbound = conn.Aliases().inbound;
  if (!publish.topic.empty()) {
    // A topic with an alias (re)defines the alias for this connection
    // [MQTT-3.3.2-12].
    std::string& topic = inbound[alias];
    topic.assign(publish.topic.data(), publish.topic.size());
    return std::string_view(topic);
  }
  auto it = inbound.find(alias);
  if (it == inbound.end()) {
    // An alias the client never defined on this connection.
    ProtocolClose(conn, mqtt::ReasonCode::kProtocolError, "topic alias not defined");
    return std::nullopt;
  }
  return std::string_view(it->second);
}

void BrokerShard::HandlePublish(Connection& conn, const mqtt::Publish& publish) {
  Session& session = *conn.session;
  stats_.CountReceived(publish.qos, publish.topic.size() + publish.payload.size());
  if (conn.throttle != nullptr &&
      !ThrottlePublisher(conn, publish.topic.size() + publish.payload.size()))
    return;
  if (!publish.properties.subscription_identifiers.empty()) {
    // Only the server sends Subscription Identifiers [MQTT-3.3.4-6].
    ProtocolClose(conn, mqtt::ReasonCode::kProtocolError, "subscription identifier from a client");
    return;
  }
  // What CONNACK advertised (Maximum QoS, Retain Available) binds the client
  // (MQTT 5 sections 3.2.2.3.4, 3.2.2.3.5, 3.3.1.2, 3.3.1.3); 3.x clients could not be told, and
  // are closed the same way (without DISCONNECT, which 3.x servers never send).
  if (publish.qos > conn.advertised.max_qos) {
    ProtocolClose(conn, mqtt::ReasonCode::kQosNotSupported, "QoS above Maximum QoS");
    return;
  }
  if (publish.retain && !conn.advertised.retain_available) {
    ProtocolClose(conn, mqtt::ReasonCode::kRetainNotSupported, "retain not available");
    return;
  }
  std::optional<std::string_view> topic = ResolveTopicAlias(conn, publish);
  if (!topic.has_value()) return;

  Message::Fields fields{*topic, publish.payload, publish.qos, publish.retain, session.client_id};
  if (conn.version == mqtt::ProtocolVersion::kV5) fields.properties = &publish.properties;
  // (A QoS 2 PUBLISH resent before PUBREL was judged the first time.)
  if (HooksWant(kHookPublish) &&
      !(publish.qos == 2 && session.inbound_qos2.contains(publish.packet_id))) [[unlikely]] {
    PublishThroughHooks(conn, publish, fields);
    return;
  }
  AcceptPublish(conn, publish, fields);
}

void BrokerShard::PublishThroughHooks(Connection& conn, const mqtt::Publish& publish,
                                      Message::Fields& fields) {
  // The publish ACL, then OnMessageArrived (shardmq/hooks.h). The rewrites
  // live here until the message is built. (A function of its own because
  // these two optionals are ~600 bytes that GCC zeroes where they are
  // declared: in HandlePublish that cost every PUBLISH a `rep stos`.)
  Session& session = *conn.session;
  std::optional<ArrivedMessage> arrived;
  std::optional<mqtt::Properties> rewritten_properties;
  const ClientInfo client = InfoFor(session);
  MessageVerdict verdict;
  DropReason why = DropReason::kPublishNotAllowed;
  Decision allowed = context_.hooks.PublishCheck(client, fields.topic, publish.qos, publish.retain);
  if (allowed.kind == Decision::Kind::kDeny) {
    verdict = MessageVerdict::Reject(allowed.reason_code);
  } else {
    verdict = RunArrivedHooks(client, fields, arrived, rewritten_properties);
    why = DropReason::kRejectedByHook;
  }
  if (verdict.kind != MessageVerdict::Kind::kAccept) {
    if (HooksWant(kHookDropped)) {
      context_.hooks.MessageDropped(session.client_id, ViewOf(fields), why);
    }
    AnswerUnrouted(conn, publish, verdict);
    return;
  }
  AcceptPublish(conn, publish, fields);
}

void BrokerShard::AcceptPublish(Connection& conn, const mqtt::Publish& publish,
                                Message::Fields& fields) {
  Session& session = *conn.session;
  const bool v5 = conn.version == mqtt::ProtocolVersion::kV5;
  uint64_t sequence_before = 0;
  if (log_ != nullptr) {
    sequence_before = log_->next_sequence();
    durable_targets_.Clear();  // what earlier QoS 0 messages reached is not waited for
  }
  if (publish.qos == 2) {
    // A QoS 2 PUBLISH stays unacknowledged (to the client's count) until
    // PUBCOMP; more of them than Receive Maximum is a breach (section 3.3.4).
    if (conn.version == mqtt::ProtocolVersion::kV5 &&
        session.inbound_qos2.size() >= conn.advertised.receive_maximum &&
        !session.inbound_qos2.contains(publish.packet_id)) {
      ProtocolClose(conn, mqtt::ReasonCode::kReceiveMaximumExceeded,
                    "more QoS 2 PUBLISH in flight than Receive Maximum");
      return;
    }
    // Exactly once: a PUBLISH resent before PUBREL is acknowledged again but
    // not delivered again [MQTT-4.3.3-2] (method B: store the packet id).
    bool first_time = session.inbound_qos2.insert(publish.packet_id).second;
    // A persistent publisher's QoS 2 message is committed once all its
    // copies are stored (durable_acks.cc): its packet id is logged then, not
    // now. With `sync` its copies also wait for the commit (origin).
    const bool commit = first_time && log_ != nullptr && session.logged;
    bool matched = true;
    if (first_time) {
      if (commit) {
        if (AcksWaitForLog()) fields.origin = next_log_number_++;
      } else {
        LogInboundQos2(session, publish.packet_id, true);
      }
      bool shared_here = true;
      if (context_.cluster != nullptr) [[unlikely]] {
        shared_here = !ExportToCluster(fields);
        if (cluster_congested_) PauseForCluster(conn);
      }
      // Other nodes may have subscribers: only this node's are known here.
      matched = Route(fields, shared_here) || context_.cluster != nullptr;
    }
    mqtt::PubAck pubrec;
    pubrec.type = mqtt::PacketType::kPubrec;
    pubrec.packet_id = publish.packet_id;
    if (v5 && !matched) pubrec.reason_code = mqtt::ReasonCode::kNoMatchingSubscribers;
    if (commit) {
      // The receiver takes ownership with PUBREC [MQTT-4.3.3]: with `sync`,
      // not before the message and this packet id are stored.
      CommitWhenDurable(conn, pubrec, fields.origin, sequence_before,
                        /*ack_now=*/!AcksWaitForLog());
      return;
    }
    if (AcksWaitForLog()) {
      if (!first_time && CommitPending(session.client_id, publish.packet_id)) {
        // A resend of a message being committed: its PUBREC comes with the
        // commit, on this connection.
      } else {
        // A resent PUBLISH waits for what the first one logged, which may
        // not be on disk yet.
        AckWhenDurable(conn, pubrec, sequence_before, /*wait_here=*/!first_time);
      }
      return;
    }
    SendAck(conn, pubrec.type, pubrec.packet_id, pubrec.reason_code);
    return;
  }

  bool shared_here = true;
  if (context_.cluster != nullptr) [[unlikely]] {
    // Shared groups get it back through their shared queues.
    shared_here = !ExportToCluster(fields);
    // QoS 0 may be dropped at a full buffer (QoS 0 goes first); what is
    // acknowledged may not, so its publisher waits instead.
    if (cluster_congested_ && publish.qos > 0) PauseForCluster(conn);
  }
  const bool matched = Route(fields, shared_here) || context_.cluster != nullptr;
  if (publish.qos == 1) {
    // Informational: the message was accepted and nobody wanted it.
    const mqtt::ReasonCode reason =
        v5 && !matched ? mqtt::ReasonCode::kNoMatchingSubscribers : mqtt::ReasonCode::kSuccess;
    if (AcksWaitForLog()) {
      // PUBACK hands ownership to the broker [MQTT-4.3.2]: with `sync`, only
      // once the message is stored wherever it is kept.
      mqtt::PubAck puback;
      puback.type = mqtt::PacketType::kPuback;
      puback.packet_id = publish.packet_id;
      puback.reason_code = reason;
      AckWhenDurable(conn, puback, sequence_before);
      return;
    }
    SendAck(conn, mqtt::PacketType::kPuback, publish.packet_id, reason);
  }
}

void BrokerShard::SendWhenLogged(Connection& conn, const mqtt::Packet& packet) {
  // Only a logged session's records matter. With `async` it waits for the
  // write, not the fdatasync: a few microseconds, and a broker killed right
  // after PUBCOMP cannot bring back a released id the client now reuses for
  // a new message (the resent PUBLISH would be taken for a duplicate).
  if (log_ == nullptr || conn.session == nullptr || !conn.session->logged) {
    SendPacket(conn, packet);
    return;
  }
  log_->WhenDurable([this, id = conn.id, packet](absl::Status) {
    Connection* c = Find(id);
    if (c != nullptr && c->state == Connection::State::kConnected) SendPacket(*c, packet);
  });
}

void BrokerShard::AnswerUnrouted(Connection& conn, const mqtt::Publish& publish,
                                 const MessageVerdict& verdict) {
  if (publish.qos == 0) return;  // nothing to answer; MQTT 5 could DISCONNECT, we drop
  const bool v5 = conn.version == mqtt::ProtocolVersion::kV5;
  // MQTT 5 tells the publisher; 3.x acknowledges and drops [MQTT-3.3.5-2].
  const bool tell = v5 && verdict.kind == MessageVerdict::Kind::kReject;
  mqtt::PubAck ack;
  ack.packet_id = publish.packet_id;
  if (tell) {
    ack.reason_code = verdict.reason_code >= 0x80
                          ? static_cast<mqtt::ReasonCode>(verdict.reason_code)
                          : mqtt::ReasonCode::kNotAuthorized;
  }
  if (publish.qos == 1) {
    ack.type = mqtt::PacketType::kPuback;
  } else {
    ack.type = mqtt::PacketType::kPubrec;
    // A failed PUBREC ends the flow; otherwise the id waits for PUBREL as usual.
    if (!tell && conn.session->inbound_qos2.insert(publish.packet_id).second) {
      LogInboundQos2(*conn.session, publish.packet_id, true);
    }
  }
  SendPacket(conn, ack);
}

void BrokerShard::HandlePubAck(Connection& conn, const mqtt::PubAck& ack) {
  Session& session = *conn.session;
  switch (ack.type) {
    case mqtt::PacketType::kPuback:
    case mqtt::PacketType::kPubcomp: {
      // The outbound flow is complete; an unknown id (a duplicate ack) is
      // ignored, as the spec leaves it.
      auto it = session.inflight.find(ack.packet_id);
      uint8_t expected_qos = ack.type == mqtt::PacketType::kPuback ? 1 : 2;
      if (it == session.inflight.end() || it->second.qos != expected_qos) return;
      if (expected_qos == 2 && !it->second.released) {
        ProtocolClose(conn, mqtt::ReasonCode::kProtocolError, "PUBCOMP before PUBREC");
        return;
      }
      LogItem(kRecordDone, it->second.log_item);
      session.inflight.erase(it);
      PumpQueue(session);
      return;
    }
    case mqtt::PacketType::kPubrec: {
      auto it = session.inflight.find(ack.packet_id);
      mqtt::PubAck pubrel;
      pubrel.type = mqtt::PacketType::kPubrel;
      pubrel.packet_id = ack.packet_id;
      if (it == session.inflight.end() || it->second.qos != 2) {
        if (conn.version == mqtt::ProtocolVersion::kV5) {
          pubrel.reason_code = mqtt::ReasonCode::kPacketIdentifierNotFound;
          SendPacket(conn, pubrel);
        }
        return;
      }
      if (conn.version == mqtt::ProtocolVersion::kV5 &&
          static_cast<uint8_t>(ack.reason_code) >= 0x80) {
        // MQTT 5: a failure PUBREC ends the flow (section 4.3.3); no PUBREL.
        LogItem(kRecordDone, it->second.log_item);
        session.inflight.erase(it);
        PumpQueue(session);
        return;
      }
      // The message is no longer needed: only its packet id stays in use
      // until PUBCOMP [MQTT-4.3.3-3].
      it->second.released = true;
      it->second.message = MessageRef();
      // With `sync`, PUBREL waits until "released" is stored: after a crash
      // the broker must send PUBREL again, not the PUBLISH, which a client
      // that completed the flow would take for a new message.
      LogItem(kRecordReleased, it->second.log_item);
      SendWhenLogged(conn, pubrel);
      return;
    }
    case mqtt::PacketType::kPubrel: {
      // Release the stored id and answer PUBCOMP, even for an id we no
      // longer know (a PUBREL resent after reconnect, section 4.3.3).
      bool known = session.inbound_qos2.erase(ack.packet_id) > 0;
      if (known) {
        LogInboundQos2(session, ack.packet_id, false);
        ReleasePendingCommit(session.client_id, ack.packet_id);
      }
      mqtt::PubAck pubcomp;
      pubcomp.type = mqtt::PacketType::kPubcomp;
      pubcomp.packet_id = ack.packet_id;
      if (!known && conn.version == mqtt::ProtocolVersion::kV5) {
        pubcomp.reason_code = mqtt::ReasonCode::kPacketIdentifierNotFound;
      }
      // With `sync`, once the release is stored: a crash must not bring back
      // an id the client may now reuse for a new message.
      SendWhenLogged(conn, pubcomp);
      return;
    }
    default:
      return;
  }
}

}  // namespace shardmq::broker
