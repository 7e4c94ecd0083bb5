// Protocol versions the codec speaks. The wire level byte of CONNECT selects
// the version; everything else in the codec is parameterised by it.
#pragma once

#include <cstdint>

namespace shardmq::mqtt {

// MQTT protocol version, valued as its CONNECT protocol level byte.
// kUnknown is the state of a connection before its CONNECT is decoded.
enum class ProtocolVersion : uint8_t {
  kUnknown = 0,
  kV31 = 3,   // MQTT 3.1, protocol name "MQIsdp".
  kV311 = 4,  // MQTT 3.1.1, protocol name "MQTT".
  kV5 = 5,    // MQTT 5.0, protocol name "MQTT".
};

// Mosquitto bridges set the high bit of the protocol level (0x83, 0x84).
inline constexpr uint8_t kBridgeLevelFlag = 0x80;

// Returns a short name such as "3.1.1" for logs.
constexpr const char* ProtocolVersionName(ProtocolVersion v) {
  switch (v) {
    case ProtocolVersion::kV31:
      return "3.1";
    case ProtocolVersion::kV311:
      return "3.1.1";
    case ProtocolVersion::kV5:
      return "5.0";
    case ProtocolVersion::kUnknown:
      break;
  }
  return "unknown";
}

}  // namespace shardmq::mqtt
