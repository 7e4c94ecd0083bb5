#include "auth/acl_file.h"

#include <unistd.h>

#include <fstream>
#include <optional>
#include <string>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardmq::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kAcl[] = R"(# Anonymous clients.
topic read public/#
topic read $SYS/broker/uptime

user alice
topic readwrite alice/#
topic deny alice/secret
topic read sensors/+/temp
topic write cmd/+/set
topic read $SYS/#
topic readwrite #

user bob
topic bob/#
topic deny #
  # indented comment

user carol
topic write carol/out
topic read  room with spaces/x

user alice
topic read extra/alice

pattern write devices/%c/out
pattern read devices/%c/in/#
pattern readwrite users/%u/#
pattern deny users/%u/locked
pattern read shared/+/status
)";

enum Op { kPub, kSub, kRecv };

struct Case {
  std::optional<std::string_view> user;
  std::string_view client;
  Op op;
  std::string_view target;
  bool allowed;
};

std::string OpName(Op op) { return op == kPub ? "publish" : op == kSub ? "subscribe" : "receive"; }

class AclTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = absl::StrFormat("%s/auth_acl_%d", ::testing::TempDir(), getpid());
    std::ofstream(path_) << kAcl;
    absl::StatusOr<AclFile> acl = AclFile::Load(path_);
    ASSERT_TRUE(acl.ok()) << acl.status();
    acl_ = *std::move(acl);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  void Run(std::initializer_list<Case> cases) {
    for (const Case& c : cases) {
      bool got = c.op == kPub   ? acl_->MayPublish(c.user, c.client, c.target)
                 : c.op == kSub ? acl_->MaySubscribe(c.user, c.client, c.target)
                                : acl_->MayReceive(c.user, c.client, c.target);
      EXPECT_EQ(got, c.allowed) << (c.user ? std::string(*c.user) : "<anonymous>") << " ("
                                << c.client << ") " << OpName(c.op) << " \"" << c.target << "\"";
    }
  }

  std::string path_;
  std::optional<AclFile> acl_;
};

constexpr std::nullopt_t kAnon = std::nullopt;

TEST_F(AclTableTest, Anonymous) {
  Run({
      {kAnon, "c1", kSub, "public/news", true},
      {kAnon, "c1", kSub, "public/#", true},
      {kAnon, "c1", kSub, "public/+/x", true},
      {kAnon, "c1", kSub, "#", false},
      {kAnon, "c1", kRecv, "public/a/b", true},
      {kAnon, "c1", kPub, "public/news", false},  // read only
      {kAnon, "c1", kSub, "alice/x", false},
      {kAnon, "c1", kSub, "$SYS/broker/uptime", true},
      {kAnon, "c1", kSub, "$SYS/broker/+", false},
      // Patterns apply to anonymous clients too, except those with %u.
      {kAnon, "c1", kPub, "devices/c1/out", true},
      {kAnon, "c1", kSub, "users/c1/x", false},
      {kAnon, "c1", kSub, "shared/a/status", true},
  });
}

TEST_F(AclTableTest, UserSections) {
  Run({
      {"alice", "a1", kPub, "alice/x", true},
      {"alice", "a1", kSub, "alice/#", true},
      {"alice", "a1", kPub, "anything/else", true},  // topic readwrite #
      {"alice", "a1", kSub, "sensors/kitchen/temp", true},
      {"alice", "a1", kSub, "extra/alice", true},  // second "user alice" section adds
      {"bob", "b1", kPub, "bob/x", false},         // deny # wins over bob/#
      {"bob", "b1", kSub, "bob/x", false},
      {"carol", "c1", kPub, "carol/out", true},
      {"carol", "c1", kSub, "carol/out", false},  // write only
      {"carol", "c1", kRecv, "carol/out", false},
      {"carol", "c1", kSub, "room with spaces/x", true},
      {"carol", "c1", kSub, "public/news", false},  // anonymous entries are not for users
      {"dave", "d1", kSub, "public/news", false},   // no section: patterns only
      {"dave", "d1", kPub, "devices/d1/out", true},
      {"", "e1", kSub, "public/news", false},  // empty username is a username
  });
}

TEST_F(AclTableTest, DenyWins) {
  Run({
      {"alice", "a1", kPub, "alice/secret", false},
      {"alice", "a1", kRecv, "alice/secret", false},
      {"alice", "a1", kSub, "alice/secret", false},
      {"alice", "a1", kPub, "alice/secret/sub", true},  // deny is exact, not a prefix
      // A wildcard subscription a deny entry does not cover is allowed (as in
      // Mosquitto); the delivery-time check refuses the denied topic.
      {"alice", "a1", kSub, "alice/+", true},
      {"alice", "a1", kRecv, "alice/public", true},
      // Deny patterns beat allow patterns.
      {"dave", "d1", kPub, "users/dave/locked", false},
      {"dave", "d1", kPub, "users/dave/open", true},
  });
}

TEST_F(AclTableTest, PatternSubstitution) {
  Run({
      {"dave", "dev7", kPub, "devices/dev7/out", true},
      {"dave", "dev7", kPub, "devices/dev8/out", false},
      {"dave", "dev7", kSub, "devices/dev7/in/#", true},
      {"dave", "dev7", kSub, "devices/dev7/in/a/+", true},
      {"dave", "dev7", kSub, "devices/+/in/#", false},
      {"dave", "dev7", kPub, "devices/dev7/in/x", false},
      {"dave", "dev7", kSub, "users/dave/#", true},
      {"dave", "dev7", kSub, "users/erin/#", false},
      {"dave", "dev7", kSub, "users/+/x", false},
  });
}

TEST_F(AclTableTest, WildcardsInEntriesAndRequests) {
  Run({
      // Entry "sensors/+/temp" (read).
      {"alice", "a1", kSub, "sensors/+/temp", true},
      {"alice", "a1", kRecv, "sensors/hall/temp", true},
      // Entry "cmd/+/set" (write).
      {"alice", "a1", kPub, "cmd/lamp/set", true},
      {"alice", "a1", kSub, "cmd/lamp/set", true},  // alice has readwrite #
      // Entry "#" covers every request without '$'.
      {"alice", "a1", kSub, "#", true},
      {"alice", "a1", kSub, "+/+/#", true},
      // Entry "shared/+/status": '+' covers '+', not '#'.
      {"dave", "d1", kSub, "shared/+/status", true},
      {"dave", "d1", kSub, "shared/x/status", true},
      {"dave", "d1", kSub, "shared/#", false},
      {"dave", "d1", kSub, "shared/x/+", false},
      {"dave", "d1", kSub, "shared/x/status/more", false},
      // "users/%u/#" covers "users/dave" (no trailing level) and deeper filters.
      {"dave", "d1", kSub, "users/dave", true},
      {"dave", "d1", kSub, "users/dave/+/#", true},
      // Shared subscriptions are checked by their inner filter.
      {"dave", "d1", kSub, "$share/g1/users/dave/#", true},
      {"dave", "d1", kSub, "$share/g1/users/erin/#", false},
      {"dave", "d1", kSub, "$share/g1", false},
  });
}

TEST_F(AclTableTest, SysTopics) {
  Run({
      // "#" does not cover "$SYS/..." (the $-rule); alice has "$SYS/#" too.
      {"alice", "a1", kSub, "$SYS/#", true},
      {"alice", "a1", kRecv, "$SYS/broker/load", true},
      {"alice", "a1", kPub, "$SYS/broker/load", false},  // never writable
      {"alice", "a1", kPub, "$SYS", false},
      {"alice", "a1", kPub, "$other/x", false},  // no entry names $other
      {"dave", "d1", kSub, "$SYS/#", false},
      {"dave", "d1", kRecv, "$SYS/broker/load", false},
  });
}

TEST_F(AclTableTest, DollarRuleInCover) {
  absl::StatusOr<AclFile> acl = AclFile::Parse("topic read #\ntopic read +/x\n", "mem");
  ASSERT_TRUE(acl.ok()) << acl.status();
  EXPECT_TRUE(acl->MaySubscribe(std::nullopt, "c", "a/x"));
  EXPECT_FALSE(acl->MaySubscribe(std::nullopt, "c", "$SYS/x"));
  EXPECT_FALSE(acl->MaySubscribe(std::nullopt, "c", "$SYS/#"));
  EXPECT_FALSE(acl->MayReceive(std::nullopt, "c", "$SYS/x"));
}

TEST_F(AclTableTest, InjectionRefused) {
  Run({
      // %c with a wildcard or '/' would widen "devices/%c/out".
      {"dave", "+", kPub, "devices/+/out", false},
      {"dave", "#", kSub, "devices/#/in/#", false},
      {"dave", "a/b", kPub, "devices/a/b/out", false},
      // The refusal is for the whole request, not just the pattern.
      {"dave", "a+", kPub, "users/dave/x", false},
      {"alice", "x#", kPub, "alice/x", false},
      // %u likewise.
      {"+", "d1", kSub, "users/+/#", false},
      {"da/ve", "d1", kPub, "users/da/ve/x", false},
      {"#", "d1", kPub, "devices/d1/out", false},
  });
}

TEST(AclFileTest, NoPatternsMeansNoInjectionRule) {
  absl::StatusOr<AclFile> acl = AclFile::Parse("user a/b\ntopic a/#\n", "mem");
  ASSERT_TRUE(acl.ok()) << acl.status();
  EXPECT_TRUE(acl->MayPublish("a/b", "c+", "a/x"));
}

TEST(AclFileTest, DefaultDenyWhenEmpty) {
  absl::StatusOr<AclFile> acl = AclFile::Parse("# nothing\n\n", "mem");
  ASSERT_TRUE(acl.ok());
  EXPECT_FALSE(acl->MayPublish(std::nullopt, "c", "a"));
  EXPECT_FALSE(acl->MaySubscribe("u", "c", "a"));
}

struct BadCase {
  const char* contents;
  int line;
  const char* why;
};

TEST(AclFileTest, MalformedFilesNameFileAndLine) {
  const BadCase cases[] = {
      {"topic\n", 1, "missing topic"},
      {"# x\ntopic read\n", 2, "missing topic"},
      {"user\n", 1, "missing user name"},
      {"topic read a/#/b\n", 1, "'#' is not the last level"},
      {"\ntopic a/b+/c\n", 2, "wildcard inside level \"b+\""},
      {"pattern read x/%u#\n", 1, "wildcard inside level"},
      {"topics read a\n", 1, "unknown keyword \"topics\""},
      {"user u\ntopic read a\nallow a\n", 3, "unknown keyword \"allow\""},
  };
  for (const BadCase& c : cases) {
    std::string path = absl::StrFormat("%s/auth_badacl_%d", ::testing::TempDir(), getpid());
    std::ofstream(path) << c.contents;
    absl::StatusOr<AclFile> acl = AclFile::Load(path);
    ASSERT_FALSE(acl.ok()) << c.contents;
    EXPECT_THAT(std::string(acl.status().message()),
                StartsWith(absl::StrFormat("%s:%d: ", path, c.line)))
        << c.contents;
    EXPECT_THAT(std::string(acl.status().message()), HasSubstr(c.why)) << c.contents;
    std::remove(path.c_str());
  }
}

TEST(AclFileTest, MissingFile) {
  absl::StatusOr<AclFile> acl = AclFile::Load("/nonexistent/acl");
  ASSERT_FALSE(acl.ok());
  EXPECT_THAT(std::string(acl.status().message()), StartsWith("/nonexistent/acl: cannot open"));
}

}  // namespace
}  // namespace shardmq::auth
