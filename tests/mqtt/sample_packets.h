// A catalogue of valid packets of every type for every protocol version,
// shared by the round-trip tests, the stream-decoder tests and the fuzz
// seed-corpus generator. All views point to static storage.
#pragma once

#include <string>
#include <vector>

#include "mqtt/packet.h"
#include "mqtt/protocol_version.h"

namespace shardmq::mqtt::testing {

// One named sample packet.
struct SamplePacket {
  std::string name;  // e.g. "publish_qos1_props"; unique within a version.
  Packet packet;
};

// Every sample valid in `version` (kV31, kV311 or kV5). MQTT 5 samples carry
// properties (including Will Properties); AUTH appears only for kV5.
std::vector<SamplePacket> SamplePackets(ProtocolVersion version);

// The three protocol versions, for parameterised tests.
inline constexpr ProtocolVersion kAllVersions[] = {ProtocolVersion::kV31, ProtocolVersion::kV311,
                                                   ProtocolVersion::kV5};

}  // namespace shardmq::mqtt::testing
