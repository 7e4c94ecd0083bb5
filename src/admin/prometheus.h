// Prometheus text exposition (format 0.0.4) of the broker's counters and
// gauges, one sample per shard where the shard matters (label shard="i").
//
// A pure function over values already collected (Broker::StatsPerShard and
// Broker::Gauges), so it is tested without a broker and costs the shards
// nothing.
//
// Example:
//   MetricsInput input{broker.StatsPerShard(), *broker.Gauges(absl::Seconds(1)), 12.5, "0.1.0"};
//   std::string body = RenderPrometheus(input);  // served as text/plain; version=0.0.4
#pragma once

#include <string>
#include <vector>

#include "shardmq/broker.h"

namespace shardmq::admin {

struct MetricsInput {
  std::vector<BrokerStats> shards;  // indexed by shard
  // Empty when the shards did not answer in time: the gauges are left out
  // (and shardmq_gauges_up says 0) rather than reported as zero.
  std::vector<ShardGauges> gauges;
  double uptime_seconds = 0;
  std::string version;
  // Rendered only when enabled (--cluster-amqp).
  ClusterStats cluster;
};

std::string RenderPrometheus(const MetricsInput& input);

}  // namespace shardmq::admin
