// What a SIGHUP applies: log level and auth file paths live, every other
// changed key reported as needing a restart, by name only.
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
  ReloadPlan plan = PlanReload(Parse({}), Parse({"--max-packet-size=4096", "--listen=[::1]:0",
                                                 "--auth-method-demo=s3cret"}));
  EXPECT_THAT(plan.needs_restart, ElementsAre("listen", "max_packet_size", "auth_method_demo"));
  EXPECT_THAT(plan.changes, IsEmpty());
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
