// Where an embedded Broker's test clients go: the port a listener bound, and
// client ids homed on a chosen shard, for tests that make messages cross
// shards.
#pragma once

#include <cstdint>
#include <string>

#include "broker/client_id.h"
#include "shardmq/broker.h"

namespace shardmq::testing {

// The port of the broker's first bound listener ("127.0.0.1:PORT").
inline uint16_t BoundPort(const Broker& broker) {
  const std::string address = broker.BoundAddresses().at(0);
  return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

// The first of "<prefix>0", "<prefix>1", ... whose home shard is not
// `other_id`'s among `shards`.
inline std::string IdHomedAwayFrom(const std::string& prefix, const std::string& other_id,
                                   int shards) {
  const int other = broker::HomeShard(other_id, shards);
  for (int i = 0;; ++i) {
    std::string id = prefix + std::to_string(i);
    if (broker::HomeShard(id, shards) != other) return id;
  }
}

}  // namespace shardmq::testing
