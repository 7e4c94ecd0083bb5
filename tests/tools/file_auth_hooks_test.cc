// FileAuthHooks called the way the broker calls it: user names taken from a
// certificate, and "limit max_connections" counted across shards through
// establishment, takeover, disconnection and refusals after OnAuthenticate.
#include "file_auth_hooks.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_format.h"
#include "auth/password_file.h"
#include "gtest/gtest.h"

namespace shardmq::daemon {
namespace {

constexpr int kShards = 2;

class FileAuthHooksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    paths_.password_file = Path("passwd");
    paths_.acl_file = Path("acl");
    Write(paths_.password_file, absl::StrFormat("bob:%s\n", *auth::HashPassword("builder", 1)));
    Write(paths_.acl_file,
          "user alice\n"
          "topic readwrite alice/#\n"
          "limit max_connections 2\n"
          "user bob\n"
          "topic readwrite bob/#\n"
          "limit max_connections 1\n");
    auto store = auth::AuthConfigStore::Create(paths_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    hooks_ = std::make_unique<FileAuthHooks>(*store_, /*allow_anonymous=*/false, kShards);
  }
  void TearDown() override {
    std::remove(paths_.password_file.c_str());
    std::remove(paths_.acl_file.c_str());
  }
  static std::string Path(std::string_view name) {
    return absl::StrFormat("%s/file_auth_hooks_%d_%s", ::testing::TempDir(), getpid(), name);
  }
  static void Write(const std::string& path, std::string_view contents) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
  }

  // A client whose user name came from its certificate ("alice").
  static ClientInfo Certified(std::string_view client_id, int shard) {
    ClientInfo client;
    client.client_id = client_id;
    client.username = "alice";
    client.certificate_identity = "alice";
    client.username_from_certificate = true;
    client.protocol_version = 5;
    client.shard = shard;
    return client;
  }
  Decision Authenticate(const ClientInfo& client, std::optional<std::string_view> password = {}) {
    ConnectRequest request;
    request.client = client;
    request.password = password;
    return hooks_->OnAuthenticate(request);
  }
  // OnAuthenticate and, if allowed, CONNACK (OnSessionEstablished).
  Decision Connect(const ClientInfo& client, std::optional<std::string_view> password = {}) {
    Decision decision = Authenticate(client, password);
    if (decision.kind != Decision::Kind::kDeny) hooks_->OnSessionEstablished(client);
    return decision;
  }

  auth::AuthPaths paths_;
  std::unique_ptr<auth::AuthConfigStore> store_;
  std::unique_ptr<FileAuthHooks> hooks_;
};

TEST_F(FileAuthHooksTest, CertificateUserNeedsNoPasswordAndGetsItsAcl) {
  // alice is not in the password file: the certificate vouches for her.
  const ClientInfo alice = Certified("a1", 0);
  EXPECT_EQ(Connect(alice).kind, Decision::Kind::kNoOpinion);
  EXPECT_EQ(hooks_->OnPublishCheck(alice, "alice/x", 1, false).kind, Decision::Kind::kNoOpinion);
  EXPECT_EQ(hooks_->OnPublishCheck(alice, "bob/x", 1, false).kind, Decision::Kind::kDeny);
  // The same name sent as CONNECT's User Name is checked against the file.
  ClientInfo claimed = alice;
  claimed.client_id = "a2";
  claimed.username_from_certificate = false;
  EXPECT_EQ(Authenticate(claimed, "anything").reason_code, 0x86);
  // And anonymous clients are still refused.
  ClientInfo anonymous;
  anonymous.client_id = "anon";
  EXPECT_EQ(Authenticate(anonymous).reason_code, 0x87);
}

TEST_F(FileAuthHooksTest, MaxConnectionsCountsAcrossShardsAndReleasesOnDisconnect) {
  const ClientInfo a1 = Certified("a1", 0);
  const ClientInfo a2 = Certified("a2", 1);
  const ClientInfo a3 = Certified("a3", 0);
  EXPECT_EQ(Connect(a1).kind, Decision::Kind::kNoOpinion);
  EXPECT_EQ(Connect(a2).kind, Decision::Kind::kNoOpinion);
  EXPECT_EQ(hooks_->OpenConnections("alice"), 2u);
  Decision third = Connect(a3);
  EXPECT_EQ(third.kind, Decision::Kind::kDeny);
  EXPECT_EQ(third.reason_code, 0x97);
  EXPECT_EQ(hooks_->OpenConnections("alice"), 2u);

  hooks_->OnClientDisconnected(a2, DisconnectReason::kClientDisconnect);
  EXPECT_EQ(hooks_->OpenConnections("alice"), 1u);
  // A second end of the same connection is not a second release.
  hooks_->OnClientDisconnected(a2, DisconnectReason::kConnectionLost);
  EXPECT_EQ(hooks_->OpenConnections("alice"), 1u);
  EXPECT_EQ(Connect(a3).kind, Decision::Kind::kNoOpinion);
  EXPECT_EQ(hooks_->OpenConnections("alice"), 2u);
}

TEST_F(FileAuthHooksTest, TakeoverBySameClientIdPassesAtTheLimit) {
  const ClientInfo a1 = Certified("a1", 0);
  const ClientInfo a2 = Certified("a2", 1);
  ASSERT_EQ(Connect(a1).kind, Decision::Kind::kNoOpinion);
  ASSERT_EQ(Connect(a2).kind, Decision::Kind::kNoOpinion);
  // The broker's order for a takeover: OnAuthenticate for the new
  // connection, OnClientDisconnected(kTakenOver) for the old, CONNACK.
  EXPECT_EQ(Authenticate(a1).kind, Decision::Kind::kNoOpinion);
  hooks_->OnClientDisconnected(a1, DisconnectReason::kTakenOver);
  hooks_->OnSessionResumed(a1);
  EXPECT_EQ(hooks_->OpenConnections("alice"), 2u);
  hooks_->OnClientDisconnected(a1, DisconnectReason::kClientDisconnect);
  hooks_->OnClientDisconnected(a2, DisconnectReason::kClientDisconnect);
  EXPECT_EQ(hooks_->OpenConnections("alice"), 0u);
}

TEST_F(FileAuthHooksTest, ConnectRefusedAfterAuthenticateGivesItsCountBack) {
  ClientInfo bob;
  bob.client_id = "b1";
  bob.username = "bob";
  bob.shard = 1;
  // The will's topic is refused by the ACL: the CONNECT fails after
  // OnAuthenticate counted it.
  EXPECT_EQ(Authenticate(bob, "builder").kind, Decision::Kind::kNoOpinion);
  EXPECT_EQ(hooks_->OpenConnections("bob"), 1u);
  EXPECT_EQ(hooks_->OnPublishCheck(bob, "alice/will", 0, false).kind, Decision::Kind::kDeny);
  EXPECT_EQ(hooks_->OpenConnections("bob"), 0u);

  // Refused by someone else (a later hook): returned at the next CONNECT on
  // that shard, so bob (limit 1) may connect again.
  EXPECT_EQ(Authenticate(bob, "builder").kind, Decision::Kind::kNoOpinion);
  bob.client_id = "b2";
  EXPECT_EQ(Connect(bob, "builder").kind, Decision::Kind::kNoOpinion);
  EXPECT_EQ(hooks_->OpenConnections("bob"), 1u);
  bob.client_id = "b3";
  EXPECT_EQ(Connect(bob, "builder").reason_code, 0x97);
}

TEST_F(FileAuthHooksTest, ConnectionNotJudgedHereIsCountedWhenEstablished) {
  // An earlier hook allowed it, so OnAuthenticate never ran here: its end
  // must still balance.
  const ClientInfo a1 = Certified("a1", 1);
  hooks_->OnSessionEstablished(a1);
  EXPECT_EQ(hooks_->OpenConnections("alice"), 1u);
  hooks_->OnClientDisconnected(a1, DisconnectReason::kConnectionLost);
  EXPECT_EQ(hooks_->OpenConnections("alice"), 0u);
}

}  // namespace
}  // namespace shardmq::daemon
