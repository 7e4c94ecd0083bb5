#include "admin/sys_topics.h"

#include <map>

#include "gtest/gtest.h"

namespace shardmq::admin {
namespace {

std::map<std::string, std::string> AsMap(
    const std::vector<std::pair<std::string, std::string>>& values) {
  return {values.begin(), values.end()};
}

TEST(SysTopicsTest, MosquittoLayout) {
  BrokerStats stats;
  stats.messages_received = 100;
  stats.messages_sent = 250;
  stats.publish_bytes_received_qos[0] = 60;
  stats.publish_bytes_received_qos[1] = 40;
  stats.bytes_sent = 999;
  std::vector<ShardGauges> gauges(2);
  gauges[0].clients_connected = 3;
  gauges[0].sessions = 5;
  gauges[1].clients_connected = 7;
  gauges[1].sessions = 7;
  gauges[0].subscriptions = 4;
  gauges[0].retained = gauges[1].retained = 2;
  SysLoad load;
  auto v = AsMap(SysTopicValues(stats, &gauges, load, 12.7, "1.2.3"));
  EXPECT_EQ(v["$SYS/broker/version"], "shardmq version 1.2.3");
  EXPECT_EQ(v["$SYS/broker/uptime"], "12 seconds");
  EXPECT_EQ(v["$SYS/broker/messages/received"], "100");
  EXPECT_EQ(v["$SYS/broker/messages/sent"], "250");
  EXPECT_EQ(v["$SYS/broker/publish/bytes/received"], "100");
  EXPECT_EQ(v["$SYS/broker/bytes/sent"], "999");
  EXPECT_EQ(v["$SYS/broker/clients/connected"], "10");
  EXPECT_EQ(v["$SYS/broker/clients/total"], "12");
  EXPECT_EQ(v["$SYS/broker/clients/disconnected"], "2");
  EXPECT_EQ(v["$SYS/broker/subscriptions/count"], "4");
  EXPECT_EQ(v["$SYS/broker/retained messages/count"], "2");
  EXPECT_EQ(v["$SYS/broker/load/messages/received/1min"], "0.00");
}

TEST(SysTopicsTest, NoGaugesNoGaugeTopics) {
  SysLoad load;
  auto v = AsMap(SysTopicValues(BrokerStats{}, nullptr, load, 0, "x"));
  EXPECT_EQ(v.count("$SYS/broker/clients/connected"), 0u);
  EXPECT_EQ(v.count("$SYS/broker/messages/received"), 1u);
}

TEST(SysTopicsTest, LoadConvergesToTheRatePerMinute) {
  SysLoad load;
  BrokerStats stats;
  load.Update(stats, absl::Seconds(10));  // primes
  // 10 messages a second = 600 a minute, for 10 minutes.
  for (int i = 0; i < 60; ++i) {
    stats.messages_received += 100;
    load.Update(stats, absl::Seconds(10));
  }
  const SysLoad::Rates& r = load.rates(SysLoad::kMessagesReceived);
  EXPECT_NEAR(r.one, 600, 1);
  EXPECT_GT(r.five, 500);  // 1 - e^-2 of the way
  EXPECT_LT(r.five, 600);
  EXPECT_LT(r.fifteen, r.five);
}

}  // namespace
}  // namespace shardmq::admin
