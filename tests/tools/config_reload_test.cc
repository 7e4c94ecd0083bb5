// What a SIGHUP applies: log level, auth file paths and limits live (limits
// given to the broker, logged "key: old -> new"), every other changed key
// reported as needing a restart, by name only.
#include "config_reload.h"

#include <string>
#include <vector>

#include "daemon_flags.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardmq::daemon {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

DaemonConfig Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "shardmq");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  absl::StatusOr<DaemonConfig> config =
      ParseDaemonFlags(static_cast<int>(argv.size()), argv.data());
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *std::move(config) : DaemonConfig{};
}

TEST(ConfigReloadTest, NothingChanged) {
  ReloadPlan plan = PlanReload(Parse({"--max-inflight=8"}), Parse({"--max-inflight=8"}));
  EXPECT_FALSE(plan.log_level.has_value());
  EXPECT_FALSE(plan.auth_paths.has_value());
  EXPECT_THAT(plan.changes, IsEmpty());
  EXPECT_THAT(plan.needs_restart, IsEmpty());
}

TEST(ConfigReloadTest, LogLevelAndAuthPathsApply) {
  DaemonConfig running = Parse({"--acl-file=/etc/acl", "--allow-anonymous=true"});
  DaemonConfig next =
      Parse({"--log-level=debug", "--acl-file=/etc/acl2", "--allow-anonymous=true"});
  ReloadPlan plan = PlanReload(running, next);
  EXPECT_EQ(plan.log_level, base::LogLevel::kDebug);
  ASSERT_TRUE(plan.auth_paths.has_value());
  EXPECT_EQ(plan.auth_paths->acl_file, "/etc/acl2");
  EXPECT_EQ(plan.auth_paths->password_file, "");
  EXPECT_THAT(plan.changes,
              ElementsAre("log_level info -> debug", "acl_file /etc/acl -> /etc/acl2"));
  EXPECT_THAT(plan.needs_restart, IsEmpty());

  // Once adopted, the same settings are no change.
  Adopt(next, "log_level", &running);
  Adopt(next, "acl_file", &running);
  EXPECT_EQ(running.log_level, base::LogLevel::kDebug);
  EXPECT_EQ(running.acl_file, "/etc/acl2");
  plan = PlanReload(running, next);
  EXPECT_THAT(plan.changes, IsEmpty());
  EXPECT_THAT(plan.needs_restart, IsEmpty());
}

TEST(ConfigReloadTest, OtherKeysNeedARestartAndShowNoValues) {
  ReloadPlan plan = PlanReload(
      Parse({}), Parse({"--batch-wait-us=100", "--listen=[::1]:0", "--auth-method-demo=s3cret",
                        "--shards=3", "--http-listen=127.0.0.1:0"}));
  EXPECT_THAT(plan.needs_restart,
              ElementsAre("shards", "listen", "batch_wait_us", "auth_method_demo", "http_listen"));
  EXPECT_THAT(plan.changes, IsEmpty());
  EXPECT_FALSE(plan.limits.has_value());
  EXPECT_FALSE(plan.connection_limits.has_value());
}

TEST(ConfigReloadTest, LimitsApplyAndTheLogSaysOldAndNew) {
  DaemonConfig running = Parse({"--deny-subscribe=a/#"});
  DaemonConfig next = Parse({"--max-subscriptions-per-client=2", "--max-packet-size=4096",
                             "--max-connections=10", "--deny-subscribe=", "--max-qos=1"});
  ReloadPlan plan = PlanReload(running, next);
  EXPECT_THAT(plan.needs_restart, IsEmpty());
  EXPECT_THAT(plan.changes, ElementsAre("max_connections: 1000000 -> 10",
                                        "max_packet_size: 1048576 -> 4096 (new connections only)",
                                        "max_subscriptions_per_client: 10000 -> 2",
                                        "deny_subscribe: a/# -> (none)",
                                        "max_qos: 2 -> 1 (new connections only)"));
  EXPECT_THAT(plan.limit_keys,
              ElementsAre("max_connections", "max_packet_size", "max_subscriptions_per_client",
                          "deny_subscribe", "max_qos"));
  ASSERT_TRUE(plan.limits.has_value());
  EXPECT_EQ(plan.limits->max_subscriptions_per_client, 2u);
  EXPECT_EQ(plan.limits->max_packet_size, 4096u);
  EXPECT_THAT(plan.limits->denied_filters, IsEmpty());
  ASSERT_TRUE(plan.connection_limits.has_value());
  EXPECT_EQ(plan.connection_limits->max_connections, 10u);

  // Once adopted, the same settings are no change.
  for (const std::string& key : plan.limit_keys) Adopt(next, key, &running);
  EXPECT_EQ(running.options.limits.max_qos, 1);
  EXPECT_EQ(running.options.max_connections, 10u);
  plan = PlanReload(running, next);
  EXPECT_THAT(plan.changes, IsEmpty());
  EXPECT_FALSE(plan.limits.has_value());
}

TEST(ConfigReloadTest, OnlyConnectionLimitsLeaveTheOtherLimitsAlone) {
  ReloadPlan plan = PlanReload(Parse({}), Parse({"--max-connections-per-address=4"}));
  EXPECT_FALSE(plan.limits.has_value());
  ASSERT_TRUE(plan.connection_limits.has_value());
  EXPECT_EQ(plan.connection_limits->max_connections_per_address, 4u);
  EXPECT_THAT(plan.changes, ElementsAre("max_connections_per_address: 0 -> 4"));
}

TEST(ConfigReloadTest, ApplyLimitsGivesThemToTheBroker) {
  auto broker = Broker::Create(Parse({}).options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  ReloadPlan plan =
      PlanReload(Parse({}), Parse({"--max-subscriptions-per-client=2", "--max-connections=10"}));
  ASSERT_TRUE(ApplyLimits(plan, **broker).ok());
  EXPECT_EQ((*broker)->limits().max_subscriptions_per_client, 2u);
  EXPECT_EQ((*broker)->connection_limits().max_connections, 10u);
}

TEST(ConfigReloadTest, LimitsTheBrokerRefusesChangeNothing) {
  auto broker = Broker::Create(Parse({}).options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  ReloadPlan plan =
      PlanReload(Parse({}), Parse({"--max-subscriptions-per-client=2", "--max-connections=10"}));
  ASSERT_TRUE(plan.limits.has_value());
  plan.limits->receive_maximum = 0;  // the flags refuse it; the broker too
  absl::Status status = ApplyLimits(plan, **broker);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ((*broker)->limits().max_subscriptions_per_client, 10000u);
  EXPECT_EQ((*broker)->connection_limits().max_connections, 1'000'000u);
}

TEST(ConfigReloadTest, AutoAnonymousDecidingOtherwiseNeedsARestart) {
  // "auto" stays "auto", but with a password file it now means false.
  ReloadPlan plan = PlanReload(Parse({}), Parse({"--password-file=/etc/passwd"}));
  EXPECT_THAT(plan.needs_restart, ElementsAre("allow_anonymous"));
  ASSERT_TRUE(plan.auth_paths.has_value());
  EXPECT_EQ(plan.auth_paths->password_file, "/etc/passwd");
}

}  // namespace
}  // namespace shardmq::daemon
