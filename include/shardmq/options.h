// shardmq/options.h: what an embedding program (or the shardmq daemon) can
// set before the broker starts.
//
// Example:
//   shardmq::Options options;
//   options.shards = 4;
//   options.listeners = {"127.0.0.1:1883", "[::1]:1883"};
//   auto broker = shardmq::Broker::Create(options);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shardmq {

struct Options {
  // Number of shards: threads that each own one io_uring ring, their
  // connections and their part of the sessions. 0 means one per CPU the
  // process may run on. More shards than CPUs works but gains nothing.
  int shards = 0;

  // Addresses to accept MQTT connections on: "host:port" or
  // "tcp://host:port", IPv4 or IPv6 ("[::1]:1883"). Port 0 picks a free port;
  // Broker::BoundAddresses() tells which.
  std::vector<std::string> listeners = {"0.0.0.0:1883"};

  // CPU for each shard thread, shard i on cpu_affinity[i % size]. Empty: the
  // threads are not pinned and the kernel schedules them.
  std::vector<int> cpu_affinity;

  // Connections open at once over all shards; beyond it new connections are
  // closed as soon as they are accepted (and counted).
  uint32_t max_connections = 1'000'000;
};

}  // namespace shardmq
