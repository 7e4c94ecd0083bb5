// Packet type names and the variant -> wire type mapping.
#include "mqtt/packet.h"

namespace shardmq::mqtt {

const char* PacketTypeName(PacketType type) {
  static constexpr const char* kNames[] = {"RESERVED",  "CONNECT",  "CONNACK",     "PUBLISH",
                                           "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
                                           "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                           "PINGREQ",   "PINGRESP", "DISCONNECT",  "AUTH"};
  return kNames[static_cast<uint8_t>(type) & 0x0F];
}

PacketType GetPacketType(const Packet& packet) {
  switch (packet.index()) {
    case 0:
      return PacketType::kConnect;
    case 1:
      return PacketType::kConnack;
    case 2:
      return PacketType::kPublish;
    case 3:
      return std::get<PubAck>(packet).type;
    case 4:
      return PacketType::kSubscribe;
    case 5:
      return PacketType::kSuback;
    case 6:
      return PacketType::kUnsubscribe;
    case 7:
      return PacketType::kUnsuback;
    case 8:
      return PacketType::kPingreq;
    case 9:
      return PacketType::kPingresp;
    case 10:
      return PacketType::kDisconnect;
    default:
      return PacketType::kAuth;
  }
}

}  // namespace shardmq::mqtt
