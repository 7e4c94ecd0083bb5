// ResolveUnixOwner: names through the account databases, numbers as in
// chown(1), and errors that name what does not exist.
#include "net/unix_owner.h"

#include <sys/types.h>

#include "gtest/gtest.h"

namespace shardmq::net {
namespace {

constexpr uid_t kUnchangedUid = static_cast<uid_t>(-1);
constexpr gid_t kUnchangedGid = static_cast<gid_t>(-1);

TEST(UnixOwnerTest, EmptyLeavesBothUnchanged) {
  absl::StatusOr<UnixOwner> owner = ResolveUnixOwner("", "");
  ASSERT_TRUE(owner.ok()) << owner.status();
  EXPECT_EQ(owner->uid, kUnchangedUid);
  EXPECT_EQ(owner->gid, kUnchangedGid);
}

TEST(UnixOwnerTest, NamesAreLookedUp) {
  // root is uid 0 and group 0 on every Linux system.
  absl::StatusOr<UnixOwner> owner = ResolveUnixOwner("root", "root");
  ASSERT_TRUE(owner.ok()) << owner.status();
  EXPECT_EQ(owner->uid, 0u);
  EXPECT_EQ(owner->gid, 0u);
  owner = ResolveUnixOwner("root", "");
  ASSERT_TRUE(owner.ok()) << owner.status();
  EXPECT_EQ(owner->uid, 0u);
  EXPECT_EQ(owner->gid, kUnchangedGid);
}

TEST(UnixOwnerTest, NumbersWithoutAnAccountAreTakenAsIds) {
  absl::StatusOr<UnixOwner> owner = ResolveUnixOwner("54321", "54322");
  ASSERT_TRUE(owner.ok()) << owner.status();
  EXPECT_EQ(owner->uid, 54321u);
  EXPECT_EQ(owner->gid, 54322u);
}

TEST(UnixOwnerTest, UnknownNamesAreErrorsNamingThem) {
  absl::StatusOr<UnixOwner> owner = ResolveUnixOwner("no_such_user_x", "root");
  ASSERT_FALSE(owner.ok());
  EXPECT_EQ(owner.status().message(), "no user \"no_such_user_x\" on this system");
  owner = ResolveUnixOwner("root", "no_such_group_x");
  ASSERT_FALSE(owner.ok());
  EXPECT_EQ(owner.status().message(), "no group \"no_such_group_x\" on this system");
  // -1 means "unchanged" to chown, never an owner.
  EXPECT_FALSE(ResolveUnixOwner("4294967295", "").ok());
}

}  // namespace
}  // namespace shardmq::net
