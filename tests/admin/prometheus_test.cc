#include "admin/prometheus.h"

#include <map>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace shardmq::admin {
namespace {

// name{labels} -> value, and the families that have a # TYPE line.
struct Parsed {
  std::map<std::string, std::string> samples;
  std::map<std::string, std::string> types;
};

Parsed Parse(const std::string& text) {
  Parsed out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string name, type;
      words >> name >> type;
      out.types[name] = type;
    } else if (!line.empty() && line[0] != '#') {
      const size_t space = line.rfind(' ');
      out.samples[line.substr(0, space)] = line.substr(space + 1);
    }
  }
  return out;
}

TEST(PrometheusTest, PerShardCountersWithLabels) {
  MetricsInput input;
  input.shards.resize(2);
  input.shards[0].messages_received_qos[0] = 7;
  input.shards[1].messages_received_qos[1] = 3;
  input.shards[1].dropped_queue_full = 4;
  input.shards[0].connections_accepted = 11;
  input.shards[1].refused_per_address = 2;
  input.shards[0].refused_proxy_header = 5;
  input.version = "9.9";
  Parsed p = Parse(RenderPrometheus(input));
  EXPECT_EQ(p.samples["shardmq_messages_received_total{shard=\"0\",qos=\"0\"}"], "7");
  EXPECT_EQ(p.samples["shardmq_messages_received_total{shard=\"1\",qos=\"1\"}"], "3");
  EXPECT_EQ(p.samples["shardmq_messages_dropped_total{shard=\"1\",reason=\"queue_full\"}"], "4");
  EXPECT_EQ(p.samples["shardmq_connections_accepted_total{shard=\"0\"}"], "11");
  EXPECT_EQ(p.samples["shardmq_connections_refused_total{shard=\"1\",reason=\"per_address\"}"],
            "2");
  EXPECT_EQ(p.samples["shardmq_connections_refused_total{shard=\"0\",reason=\"proxy_header\"}"],
            "5");
  EXPECT_EQ(p.samples["shardmq_info{version=\"9.9\"}"], "1");
  EXPECT_EQ(p.types["shardmq_messages_received_total"], "counter");
  // Without gauges they are left out, and gauges_up says so.
  EXPECT_EQ(p.samples["shardmq_gauges_up"], "0");
  EXPECT_EQ(p.samples.count("shardmq_clients_connected{shard=\"0\"}"), 0u);
}

TEST(PrometheusTest, EverySampleHasAType) {
  MetricsInput input;
  input.shards.resize(3);
  input.gauges.resize(3);
  for (int i = 0; i < 3; ++i) {
    input.gauges[i].shard = i;
    input.gauges[i].clients_connected = 10 + i;
    input.gauges[i].retained = 5;
  }
  Parsed p = Parse(RenderPrometheus(input));
  for (const auto& [sample, value] : p.samples) {
    const std::string name = sample.substr(0, sample.find('{'));
    EXPECT_TRUE(p.types.count(name)) << name;
  }
  EXPECT_EQ(p.samples["shardmq_clients_connected{shard=\"2\"}"], "12");
  EXPECT_EQ(p.samples["shardmq_retained_messages"], "5");  // once, not summed
  EXPECT_EQ(p.samples["shardmq_gauges_up"], "1");
}

TEST(PrometheusTest, ClusterLinkOnlyWhenEnabled) {
  MetricsInput input;
  input.shards.resize(1);
  EXPECT_EQ(Parse(RenderPrometheus(input)).samples.count("shardmq_cluster_connected"), 0u);
  input.cluster.enabled = true;
  input.cluster.connected = true;
  input.cluster.published = 12;
  input.cluster.dropped_qos0 = 3;
  input.cluster.bindings = 4;
  input.cluster.shared_queues = 2;
  Parsed p = Parse(RenderPrometheus(input));
  EXPECT_EQ(p.samples["shardmq_cluster_connected"], "1");
  EXPECT_EQ(p.samples["shardmq_cluster_published_total"], "12");
  EXPECT_EQ(p.samples["shardmq_cluster_dropped_total{qos=\"0\"}"], "3");
  EXPECT_EQ(p.samples["shardmq_cluster_dropped_total{qos=\"1_2\"}"], "0");
  EXPECT_EQ(p.samples["shardmq_cluster_bindings"], "4");
  EXPECT_EQ(p.samples["shardmq_cluster_shared_queues"], "2");
  EXPECT_EQ(p.types["shardmq_cluster_shared_consumed_total"], "counter");
  EXPECT_EQ(p.types["shardmq_cluster_consumed_total"], "counter");
}

}  // namespace
}  // namespace shardmq::admin
