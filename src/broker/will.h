// A will message held by the broker: from CONNECT until the connection ends,
// and for MQTT 5 possibly longer, while its Will Delay Interval runs
// (Session::delayed_will).
//
// Lifecycle and thread: owned by a Connection or a Session on the client id's
// home shard and touched only there. The decoded CONNECT's views die when
// HandleConnect returns, so everything is copied: topic, payload and publisher
// into a Message, the will's MQTT 5 properties into WillProperties.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "broker/message.h"
#include "mqtt/properties.h"

namespace shardmq::broker {

// An owning copy of the forwardable will properties (MQTT 5 section
// 3.1.3.2): `properties` views strings kept in `storage`. Never moved once
// filled (it is held by unique_ptr), so the views stay valid.
struct WillProperties {
  // Copies payload format, message expiry, content type, response topic,
  // correlation data and user properties out of `source` (the Will Delay
  // Interval is the broker's business, not the subscribers').
  explicit WillProperties(const mqtt::Properties& source);
  WillProperties(const WillProperties&) = delete;
  WillProperties& operator=(const WillProperties&) = delete;

  std::string storage;
  mqtt::Properties properties;
};

struct WillMessage {
  MessageRef message;  // topic, payload, QoS, retain flag and publisher
  // nullptr when the will had no forwardable property (all of 3.x).
  std::unique_ptr<WillProperties> properties;
  // MQTT 5 Will Delay Interval in seconds; 0 publishes as the connection ends.
  uint32_t delay_interval = 0;
};

}  // namespace shardmq::broker
