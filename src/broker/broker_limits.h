// The bounds the broker enforces per client and per packet (DESIGN.md,
// "Bounded everything"). Filled from shardmq::Options; read-only once the
// shards start, so every shard reads it without synchronisation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shardmq::broker {

struct Limits {
  // Largest packet accepted from a client (remaining length + fixed header);
  // larger ones close the connection (MQTT 5: DISCONNECT 0x95).
  uint32_t max_packet_size = 1 << 20;
  // QoS 1/2 messages sent to a client and not yet acknowledged.
  uint16_t max_inflight = 32;
  // Messages waiting for an in-flight slot or for an offline client to return;
  // beyond either bound new messages for that client are dropped and counted.
  uint32_t max_queued_messages = 1000;
  size_t max_queued_bytes = 16 << 20;
  // Keep QoS 0 messages for offline persistent sessions too (3.1.1 allows it).
  bool queue_qos0_offline = false;
  // Bytes waiting in a connection's socket queue beyond which QoS 0 messages
  // to it are dropped: a slow subscriber must not make the broker grow.
  size_t max_outbound_bytes = 4 << 20;
  // Filters one client may hold.
  uint32_t max_subscriptions_per_client = 10000;
  // Topic names and filters: bytes and levels.
  uint32_t max_topic_length = 65535;
  uint32_t max_topic_levels = 128;
  // A socket that has not completed CONNECT by then is closed.
  uint32_t connect_timeout_ms = 10000;
};

}  // namespace shardmq::broker
