// $SYS topics in Mosquitto's layout ($SYS/broker/uptime, .../clients/connected,
// .../load/messages/received/1min, ...): the values, computed from
// BrokerStats and ShardGauges, and the moving averages behind load/*.
//
// Pure code, no thread and no broker: SysTopicPublisher (shardmq/admin.h)
// samples the broker on its own thread and publishes what this computes.
//
// Example:
//   SysLoad load;
//   load.Update(stats, absl::Seconds(10));
//   for (auto& [topic, value] : SysTopicValues(stats, &gauges, load, 42.0, "0.1.0")) ...
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "shardmq/broker.h"

namespace shardmq::admin {

// Exponentially weighted per-minute rates over 1, 5 and 15 minutes, as
// Mosquitto's $SYS/broker/load/... (a rate, not a count: "messages per
// minute, averaged over the last N minutes").
class SysLoad {
 public:
  struct Rates {
    double one = 0, five = 0, fifteen = 0;
  };
  // What the rates are computed from; index into rates().
  enum Series {
    kMessagesReceived,
    kMessagesSent,
    kBytesReceived,
    kBytesSent,
    kPublishDropped,
    kConnections,
    kSeriesCount
  };

  // Feeds the current totals, `elapsed` after the previous call. The first
  // call only records the totals.
  void Update(const BrokerStats& stats, absl::Duration elapsed);
  const Rates& rates(Series s) const { return rates_[s]; }

 private:
  bool primed_ = false;
  uint64_t last_[kSeriesCount] = {};
  Rates rates_[kSeriesCount];
};

// Every $SYS topic and its value as text. `gauges` may be null (the shards
// did not answer): the topics that need them are left out.
std::vector<std::pair<std::string, std::string>> SysTopicValues(
    const BrokerStats& stats, const std::vector<ShardGauges>* gauges, const SysLoad& load,
    double uptime_seconds, const std::string& version);

}  // namespace shardmq::admin
