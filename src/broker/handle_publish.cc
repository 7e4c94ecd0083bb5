// PUBLISH from a client and the acknowledgements of QoS 1/2 flows in both
// directions (MQTT 3.1.1 section 4.3, MQTT 5 section 4.3).
#include "broker/broker_shard.h"

namespace shardmq::broker {

void BrokerShard::HandlePublish(Connection& conn, const mqtt::Publish& publish) {
  Session& session = *conn.session;
  ShardStats::Inc(stats_.messages_received);
  if (publish.properties.topic_alias.has_value() || publish.topic.empty()) {
    // CONNACK advertised Topic Alias Maximum 0 [MQTT-3.2.2-17, MQTT-3.3.2-9].
    ProtocolClose(conn, mqtt::ReasonCode::kTopicAliasInvalid, "topic alias not allowed");
    return;
  }
  // What CONNACK advertised (Maximum QoS, Retain Available) binds the client
  // (MQTT 5 sections 3.2.2.3.4, 3.2.2.3.5, 3.3.1.2, 3.3.1.3); 3.x clients could not be told, and
  // are closed the same way (without DISCONNECT, which 3.x servers never send).
  if (publish.qos > context_.limits.max_qos) {
    ProtocolClose(conn, mqtt::ReasonCode::kQosNotSupported, "QoS above Maximum QoS");
    return;
  }
  if (publish.retain && !context_.limits.retain_available) {
    ProtocolClose(conn, mqtt::ReasonCode::kRetainNotSupported, "retain not available");
    return;
  }

  if (publish.qos == 2) {
    // A QoS 2 PUBLISH stays unacknowledged (to the client's count) until
    // PUBCOMP; more of them than Receive Maximum is a breach (section 3.3.4).
    if (conn.version == mqtt::ProtocolVersion::kV5 &&
        session.inbound_qos2.size() >= context_.limits.receive_maximum &&
        !session.inbound_qos2.contains(publish.packet_id)) {
      ProtocolClose(conn, mqtt::ReasonCode::kReceiveMaximumExceeded,
                    "more QoS 2 PUBLISH in flight than Receive Maximum");
      return;
    }
    // Exactly once: a PUBLISH resent before PUBREL is acknowledged again but
    // not delivered again [MQTT-4.3.3-2] (method B: store the packet id).
    bool first_time = session.inbound_qos2.insert(publish.packet_id).second;
    if (first_time) {
      Route({publish.topic, publish.payload, 2, publish.retain, session.client_id});
    }
    mqtt::PubAck pubrec;
    pubrec.type = mqtt::PacketType::kPubrec;
    pubrec.packet_id = publish.packet_id;
    SendPacket(conn, pubrec);
    return;
  }

  Route({publish.topic, publish.payload, publish.qos, publish.retain, session.client_id});
  if (publish.qos == 1) {
    mqtt::PubAck puback;
    puback.type = mqtt::PacketType::kPuback;
    puback.packet_id = publish.packet_id;
    SendPacket(conn, puback);
  }
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
        // MQTT 5: a failure PUBREC ends the flow [MQTT-4.3.3-?]; no PUBREL.
        session.inflight.erase(it);
        PumpQueue(session);
        return;
      }
      // The message is no longer needed: only its packet id stays in use
      // until PUBCOMP [MQTT-4.3.3-3].
      it->second.released = true;
      it->second.message = MessageRef();
      SendPacket(conn, pubrel);
      return;
    }
    case mqtt::PacketType::kPubrel: {
      // Release the stored id and answer PUBCOMP, even for an id we no
      // longer know (a PUBREL resent after reconnect) [MQTT-4.3.3-?].
      bool known = session.inbound_qos2.erase(ack.packet_id) > 0;
      mqtt::PubAck pubcomp;
      pubcomp.type = mqtt::PacketType::kPubcomp;
      pubcomp.packet_id = ack.packet_id;
      if (!known && conn.version == mqtt::ProtocolVersion::kV5) {
        pubcomp.reason_code = mqtt::ReasonCode::kPacketIdentifierNotFound;
      }
      SendPacket(conn, pubcomp);
      return;
    }
    default:
      return;
  }
}

}  // namespace shardmq::broker
