#include "config.h"

#include <string>

#include "broker/client_id.h"
#include "gtest/gtest.h"
#include "runner.h"

namespace shardmq::bench {
namespace {

// Validate must name the offending flag.
void ExpectBad(const Config& c, const std::string& flag) {
  const absl::Status s = Validate(c);
  EXPECT_FALSE(s.ok()) << flag;
  const std::string message(s.message());
  EXPECT_TRUE(message.starts_with("--") && message.substr(2, flag.size()) == flag) << message;
}

TEST(ConfigTest, DefaultsAreValid) { EXPECT_TRUE(Validate(Config{}).ok()); }

TEST(ConfigTest, RangesNameTheFlag) {
  Config c;
  c.qos = 3;
  ExpectBad(c, "qos");
  c = Config{};
  c.mqtt_version = 6;
  ExpectBad(c, "mqtt-version");
  c = Config{};
  c.payload = 23;  // Smaller than the stamp.
  ExpectBad(c, "payload");
  c = Config{};
  c.port = 0;
  ExpectBad(c, "port");
  c = Config{};
  c.rate = -1;
  ExpectBad(c, "rate");
  c = Config{};
  c.threads = 0;
  ExpectBad(c, "threads");
  c = Config{};
  c.duration_ns = 0;
  ExpectBad(c, "duration");
  c = Config{};
  c.inflight = 70'000;
  ExpectBad(c, "inflight");
}

TEST(ConfigTest, CombinationsAreChecked) {
  Config c;
  c.shared = true;  // fanout
  ExpectBad(c, "shared");
  c = Config{};
  c.scenario = Scenario::kFanin;
  c.subscribers = 3;  // Without --shared there is one subscriber.
  ExpectBad(c, "subscribers");
  c.shared = true;
  EXPECT_TRUE(Validate(c).ok());
  c = Config{};
  c.topics = 4;  // More topics than fanout subscribers.
  ExpectBad(c, "topics");
  c = Config{};
  c.allow_loss = c.strict = true;
  ExpectBad(c, "strict");
}

TEST(ConfigTest, ScenarioNamesRoundTrip) {
  for (const char* name : {"fanout", "fanin", "p2p", "conn", "retained"}) {
    Scenario s;
    ASSERT_TRUE(ParseScenario(name, &s)) << name;
    EXPECT_STREQ(ScenarioName(s), name);
  }
  Scenario s;
  EXPECT_FALSE(ParseScenario("fan-out", &s));
}

TEST(ConfigTest, WindowDefaultsByQos) {
  Config c;
  EXPECT_EQ(c.Window(), 1000);
  c.qos = 1;
  EXPECT_EQ(c.Window(), 100);
  c.inflight = 7;
  EXPECT_EQ(c.Window(), 7);
}

TEST(PlanTest, ScenariosOpenTheRightClients) {
  Config c;
  c.client_prefix = "x-";
  c.topic_prefix = "t";
  c.publishers = 2;
  c.subscribers = 4;
  c.topics = 2;
  auto plan = PlanClients(c);
  ASSERT_EQ(plan.size(), 6u);
  EXPECT_EQ(plan[0].client_id, "x-s0");
  EXPECT_EQ(plan[1].filter, "t/fanout/1");
  EXPECT_EQ(plan[5].client_id, "x-p1");
  EXPECT_EQ(plan[5].topic, "t/fanout/1");

  c = Config{};
  c.scenario = Scenario::kFanin;
  c.topic_prefix = "t";
  c.shared = true;
  c.subscribers = 2;
  plan = PlanClients(c);
  EXPECT_EQ(plan[0].filter, "$share/smqb/t/fanin/+");

  c = Config{};
  c.scenario = Scenario::kP2p;
  c.pairs = 3;
  c.topic_prefix = "t";
  plan = PlanClients(c);
  ASSERT_EQ(plan.size(), 6u);
  EXPECT_EQ(plan[4].filter, "t/p2p/2");
  EXPECT_EQ(plan[5].topic, "t/p2p/2");

  c = Config{};
  c.scenario = Scenario::kConn;
  c.connections = 10;
  EXPECT_EQ(PlanClients(c).size(), 10u);
}

TEST(PlanTest, HomeShardFlagsSteerClientIdsToTheirShard) {
  Config c;
  c.scenario = Scenario::kP2p;
  c.pairs = 20;
  c.home_shards = 2;
  c.pub_shard = 0;
  c.sub_shard = 1;
  ASSERT_TRUE(Validate(c).ok());
  for (const ClientSpec& s : PlanClients(c)) {
    EXPECT_EQ(broker::HomeShard(s.client_id, 2), s.role == Role::kPublisher ? 0 : 1) << s.client_id;
  }
  c.sub_shard = 2;
  EXPECT_FALSE(Validate(c).ok());
  EXPECT_EQ(IdOnShard("abc", -1, 2), "abc");
}

}  // namespace
}  // namespace shardmq::bench
