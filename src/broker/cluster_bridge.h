// The broker's side of clustering (README "Cluster"): how messages from
// other nodes enter the shards. The link to RabbitMQ (cluster/amqp_link.h)
// moves opaque bodies; this side gives them their meaning.
//
// A body is a format byte (kClusterBodyFormat) followed by a MESSAGE record
// (session_records.h, body and origin 0): topic, publisher client id, QoS,
// retain, the MQTT 5 properties a subscriber receives and the expiry as a
// wall-clock deadline (nodes are assumed to keep their clocks in sync, as
// with NTP). BrokerShard::ExportToCluster writes it on the publisher's shard,
// BrokerShard::RouteFromCluster reads it on the receiving node's shard.
//
// Shared subscriptions. With clustering on, a shared group's copy of a
// message comes only from the group's shared queue (amqp_link.h), never from
// a local publish or the node's queue: RabbitMQ gives each message of that
// queue to one node, the node to one local member (BrokerShard::DeliverShared),
// so each message reaches one member of the group cluster-wide.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "broker/broker_link.h"
#include "broker/message.h"
#include "shard/timer_heap.h"

namespace shardmq::cluster {
struct SharedSource;  // cluster/amqp_link.h
}  // namespace shardmq::cluster

namespace shardmq::broker {

inline constexpr char kClusterBodyFormat = 1;

// A body as a message again (cluster_sessions.cc's queues and the retained
// set in Redis use the same format), with what is left of its expiry; a null
// message when that ran out, an error when the body does not decode.
absl::StatusOr<MessageRef> DecodeClusterMessage(std::string_view body, int64_t now_wall_ns,
                                                shard::Clock::time_point now);

// The link thread: hands a body consumed from RabbitMQ to one shard, chosen
// by its topic so that messages on one topic keep their order. False when
// the broker is not running (the link then leaves the message unacked) or
// the body cannot be read (logged; acked, since it never will be).
// `shared`: the shared queue it came from, or null for the node's queue.
bool PostFromCluster(BrokerLink& link, int shard_count, std::string_view body,
                     const cluster::SharedSource* shared);

}  // namespace shardmq::broker
