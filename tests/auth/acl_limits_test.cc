// "limit" lines of the ACL file: parsing, errors with FILE:LINE, and the
// precedence LimitsFor() applies (user section over global, per setting).
#include "auth/acl_limits.h"

#include <optional>
#include <string>

#include "absl/strings/str_format.h"
#include "auth/acl_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardmq::auth {
namespace {

using ::testing::HasSubstr;

constexpr char kAcl[] = R"(# Global limits: every client.
limit max_qos 1
limit shared_subscriptions deny
limit publish_rate 100
limit max_connections 2
topic read public/#

user alice
limit max_qos 2
limit publish_rate unlimited
limit max_subscriptions 50
topic readwrite alice/#

user bob
topic bob/#

user carol
limit shared_subscriptions allow
  limit   max_connections	10
user alice
limit max_connections 5
)";

AclFile Load() {
  absl::StatusOr<AclFile> acl = AclFile::Parse(kAcl, "acl");
  EXPECT_TRUE(acl.ok()) << acl.status();
  return *std::move(acl);
}

TEST(AclLimitsTest, GlobalLimitsApplyToAnonymousAndUsersWithoutOverrides) {
  AclFile acl = Load();
  UserLimits global{.max_qos = 1,
                    .shared_subscriptions = false,
                    .max_subscriptions = std::nullopt,
                    .publish_rate = 100,
                    .max_connections = 2};
  EXPECT_EQ(acl.LimitsFor(std::nullopt), global);
  EXPECT_EQ(acl.LimitsFor("bob"), global);     // Section without limits.
  EXPECT_EQ(acl.LimitsFor("nobody"), global);  // No section at all.
}

TEST(AclLimitsTest, UserSectionOverridesSettingBySetting) {
  AclFile acl = Load();
  UserLimits alice = acl.LimitsFor("alice");
  EXPECT_EQ(alice.max_qos, 2);                   // Raised.
  EXPECT_EQ(alice.publish_rate, std::nullopt);   // "unlimited" cancels the global 100.
  EXPECT_EQ(alice.max_subscriptions, 50u);       // Only for alice.
  EXPECT_EQ(alice.shared_subscriptions, false);  // Inherited.
  EXPECT_EQ(alice.max_connections, 5u);          // From her second section.

  UserLimits carol = acl.LimitsFor("carol");
  EXPECT_EQ(carol.shared_subscriptions, true);
  EXPECT_EQ(carol.max_connections, 10u);  // Blanks and tabs around words.
  EXPECT_EQ(carol.max_qos, 1);
}

TEST(AclLimitsTest, TopicSemanticsUnchanged) {
  AclFile acl = Load();
  // A "limit" line before "user" is global, but a "topic" line there is
  // still for anonymous clients only.
  EXPECT_TRUE(acl.MaySubscribe(std::nullopt, "c", "public/x"));
  EXPECT_FALSE(acl.MaySubscribe("bob", "c", "public/x"));
  EXPECT_TRUE(acl.MayPublish("alice", "c", "alice/x"));
  EXPECT_TRUE(acl.MayPublish("bob", "c", "bob/x"));
}

TEST(AclLimitsTest, NoLimitLinesMeansNoLimits) {
  absl::StatusOr<AclFile> acl = AclFile::Parse("user a\ntopic a/#\n", "acl");
  ASSERT_TRUE(acl.ok()) << acl.status();
  EXPECT_EQ(acl->LimitsFor("a"), UserLimits{});
  EXPECT_EQ(acl->LimitsFor(std::nullopt), UserLimits{});
}

TEST(AclLimitsTest, AllValueForms) {
  LimitSection s;
  EXPECT_TRUE(ParseLimitLine("max_qos 0", s).ok());
  EXPECT_TRUE(ParseLimitLine("shared_subscriptions allow", s).ok());
  EXPECT_TRUE(ParseLimitLine("max_subscriptions 4294967295", s).ok());
  EXPECT_TRUE(ParseLimitLine("publish_rate 1", s).ok());
  EXPECT_TRUE(ParseLimitLine("max_connections unlimited", s).ok());
  UserLimits l = ResolveLimits(s, nullptr);
  EXPECT_EQ(l.max_qos, 0);
  EXPECT_EQ(l.shared_subscriptions, true);
  EXPECT_EQ(l.max_subscriptions, 4294967295u);
  EXPECT_EQ(l.publish_rate, 1u);
  EXPECT_EQ(l.max_connections, std::nullopt);
}

struct BadCase {
  const char* contents;
  int line;
  const char* why;
};

TEST(AclLimitsTest, MalformedLimitsNameFileAndLine) {
  const BadCase cases[] = {
      {"limit\n", 1, "missing limit name"},
      {"limit max_qos\n", 1, "missing value for limit max_qos"},
      {"limit max_qos 3\n", 1, "limit max_qos wants 0, 1 or 2, not \"3\""},
      {"limit max_qos 01\n", 1, "limit max_qos wants 0, 1 or 2"},
      {"limit max_qos 1 2\n", 1, "limit max_qos takes one value"},
      {"limit shared_subscriptions yes\n", 1, "wants allow or deny, not \"yes\""},
      {"# x\nlimit max_subscriptions 0\n", 2, "wants a number from 1 to 4294967295"},
      {"limit publish_rate -5\n", 1, "not \"-5\""},
      {"limit publish_rate 10/s\n", 1, "not \"10/s\""},
      {"limit max_connections 4294967296\n", 1, "from 1 to 4294967295"},
      {"limit max_qos unlimited\n", 1, "wants 0, 1 or 2"},
      {"limit max_qoss 1\n", 1, "unknown limit \"max_qoss\""},
      {"limit max_qos 1\nlimit max_qos 2\n", 2, "limit max_qos is already set"},
      {"user a\nlimit max_qos 1\nuser b\nuser a\nlimit max_qos 0\n", 5,
       "limit max_qos is already set"},
      {"limits max_qos 1\n", 1, "unknown keyword \"limits\" (want topic, user, pattern or limit)"},
  };
  for (const BadCase& c : cases) {
    absl::StatusOr<AclFile> acl = AclFile::Parse(c.contents, "f.acl");
    ASSERT_FALSE(acl.ok()) << c.contents;
    std::string message(acl.status().message());
    EXPECT_THAT(message, ::testing::StartsWith(absl::StrFormat("f.acl:%d: ", c.line)))
        << c.contents;
    EXPECT_THAT(message, HasSubstr(c.why)) << c.contents;
  }
}

TEST(AclLimitsTest, SameSettingInGlobalAndUserIsNotADuplicate) {
  absl::StatusOr<AclFile> acl = AclFile::Parse("limit max_qos 0\nuser a\nlimit max_qos 1\n", "acl");
  ASSERT_TRUE(acl.ok()) << acl.status();
  EXPECT_EQ(acl->LimitsFor("a").max_qos, 1);
  EXPECT_EQ(acl->LimitsFor("b").max_qos, 0);
}

}  // namespace
}  // namespace shardmq::auth
