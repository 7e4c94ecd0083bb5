// The reload holder: both files load as a unit, a bad reload keeps the old
// pair, readers see a new pair after Publish, and readers on other threads
// never see a torn or freed value.
#include "auth/auth_config.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "auth/password_file.h"
#include "auth/snapshot.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardmq::auth {
namespace {

using ::testing::StartsWith;

class AuthConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    paths_.password_file = Path("passwd");
    paths_.acl_file = Path("acl");
    Write(paths_.password_file, absl::StrFormat("alice:%s\n", *HashPassword("one", 1)));
    Write(paths_.acl_file, "limit max_qos 1\nuser alice\ntopic alice/#\n");
  }
  void TearDown() override {
    std::remove(paths_.password_file.c_str());
    std::remove(paths_.acl_file.c_str());
  }
  static std::string Path(std::string_view name) {
    return absl::StrFormat("%s/auth_cfg_%d_%s", ::testing::TempDir(), getpid(), name);
  }
  static void Write(const std::string& path, std::string_view contents) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
  }
  AuthPaths paths_;
};

TEST_F(AuthConfigTest, LoadsBothFiles) {
  absl::StatusOr<std::unique_ptr<AuthConfigStore>> store = AuthConfigStore::Create(paths_);
  ASSERT_TRUE(store.ok()) << store.status();
  std::shared_ptr<const AuthConfig> config = (*store)->snapshot().Load();
  ASSERT_NE(config->passwords, nullptr);
  ASSERT_NE(config->acl, nullptr);
  EXPECT_TRUE(config->passwords->Check("alice", "one"));
  EXPECT_TRUE(config->acl->MayPublish("alice", "c", "alice/x"));
  EXPECT_EQ(config->acl->LimitsFor("alice").max_qos, 1);
}

TEST_F(AuthConfigTest, EmptyPathsMeanNoFile) {
  absl::StatusOr<std::unique_ptr<AuthConfigStore>> store = AuthConfigStore::Create({});
  ASSERT_TRUE(store.ok()) << store.status();
  std::shared_ptr<const AuthConfig> config = (*store)->snapshot().Load();
  EXPECT_EQ(config->passwords, nullptr);
  EXPECT_EQ(config->acl, nullptr);
  EXPECT_TRUE((*store)->Reload().ok());
}

TEST_F(AuthConfigTest, BadFileAtStartIsAnError) {
  Write(paths_.acl_file, "user alice\ntopic bad/#/x\n");
  absl::StatusOr<std::unique_ptr<AuthConfigStore>> store = AuthConfigStore::Create(paths_);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), StartsWith(paths_.acl_file + ":2: "));
}

TEST_F(AuthConfigTest, ReloadPublishesAndBadReloadKeepsTheOldPair) {
  absl::StatusOr<std::unique_ptr<AuthConfigStore>> store = AuthConfigStore::Create(paths_);
  ASSERT_TRUE(store.ok()) << store.status();
  Snapshot<AuthConfig>::Reader reader((*store)->snapshot());
  EXPECT_TRUE(reader.Get().passwords->Check("alice", "one"));

  // A good reload: new password, new ACL.
  Write(paths_.password_file, absl::StrFormat("alice:%s\n", *HashPassword("two", 1)));
  Write(paths_.acl_file, "user alice\ntopic read alice/#\n");
  ASSERT_TRUE((*store)->Reload().ok());
  EXPECT_EQ((*store)->snapshot().generation(), 1u);
  EXPECT_TRUE(reader.Get().passwords->Check("alice", "two"));
  EXPECT_FALSE(reader.Get().acl->MayPublish("alice", "c", "alice/x"));

  // A good password file with a bad ACL: nothing changes, not even the
  // password file (the pair fails as a unit).
  Write(paths_.password_file, absl::StrFormat("alice:%s\n", *HashPassword("three", 1)));
  Write(paths_.acl_file, "user alice\nlimit max_qos 7\n");
  absl::Status bad = (*store)->Reload();
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.message()), StartsWith(paths_.acl_file + ":2: limit max_qos"));
  EXPECT_EQ((*store)->snapshot().generation(), 1u);
  EXPECT_TRUE(reader.Get().passwords->Check("alice", "two"));
  EXPECT_FALSE(reader.Get().passwords->Check("alice", "three"));

  // A missing file on reload also keeps the old pair.
  std::remove(paths_.password_file.c_str());
  EXPECT_FALSE((*store)->Reload().ok());
  EXPECT_TRUE(reader.Get().passwords->Check("alice", "two"));
}

TEST_F(AuthConfigTest, ReloadFromNewPathsAdoptsThemOnlyWhenTheyLoad) {
  absl::StatusOr<std::unique_ptr<AuthConfigStore>> store =
      AuthConfigStore::Create({.password_file = paths_.password_file});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->snapshot().Load()->acl, nullptr);

  // A missing ACL: nothing changes, the old paths stay.
  AuthPaths missing{.password_file = paths_.password_file, .acl_file = Path("no-such-acl")};
  ASSERT_FALSE((*store)->Reload(missing).ok());
  EXPECT_EQ((*store)->paths().acl_file, "");
  EXPECT_EQ((*store)->snapshot().Load()->acl, nullptr);

  // A loadable pair is published and later plain reloads read it.
  ASSERT_TRUE((*store)->Reload(paths_).ok());
  EXPECT_EQ((*store)->paths().acl_file, paths_.acl_file);
  Write(paths_.acl_file, "user alice\ntopic read alice/#\n");
  ASSERT_TRUE((*store)->Reload().ok());
  EXPECT_FALSE((*store)->snapshot().Load()->acl->MayPublish("alice", "c", "alice/x"));
}

TEST_F(AuthConfigTest, OldPairStaysAliveWhileHeld) {
  absl::StatusOr<std::unique_ptr<AuthConfigStore>> store = AuthConfigStore::Create(paths_);
  ASSERT_TRUE(store.ok());
  Snapshot<AuthConfig>::Reader reader((*store)->snapshot());
  std::shared_ptr<const AuthConfig> held = reader.Share();  // A CONNECT in progress.
  Write(paths_.password_file, absl::StrFormat("alice:%s\n", *HashPassword("two", 1)));
  ASSERT_TRUE((*store)->Reload().ok());
  EXPECT_TRUE(held->passwords->Check("alice", "one"));
  EXPECT_TRUE(reader.Get().passwords->Check("alice", "two"));
}

// Readers on several threads while a writer publishes: every value a reader
// sees is complete and its generation only goes up. Meaningful under TSan
// and ASan (-Db_sanitize=thread / address).
TEST(SnapshotTest, ConcurrentReadersSeeWholeValuesInOrder) {
  struct Value {
    int a;
    int b;  // Always a * 2.
  };
  Snapshot<Value> snapshot(std::make_shared<const Value>(Value{0, 0}));
  constexpr int kPublishes = 2000;
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      Snapshot<Value>::Reader reader(snapshot);
      int last = 0;
      while (!done.load(std::memory_order_acquire)) {
        const Value& v = reader.Get();
        if (v.b != v.a * 2 || v.a < last) failures.fetch_add(1);
        last = v.a;
      }
      if (reader.Get().a != kPublishes) failures.fetch_add(1);
    });
  }
  for (int i = 1; i <= kPublishes; ++i) {
    snapshot.Publish(std::make_shared<const Value>(Value{i, i * 2}));
  }
  done.store(true, std::memory_order_release);
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(snapshot.generation(), static_cast<uint64_t>(kPublishes));
}

}  // namespace
}  // namespace shardmq::auth
