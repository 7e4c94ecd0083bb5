// FileAuthHooks: the daemon's --password-file, --acl-file and
// --allow-anonymous, as a shardmq::Hooks (shardmq/hooks.h) registered like
// any embedder's hook.
//
//   auto store = auth::AuthConfigStore::Create({"/etc/shardmq/passwd", "/etc/shardmq/acl"});
//   options.hooks.push_back(std::make_shared<FileAuthHooks>(store->get(), false, shards));
//   ... on SIGHUP: (*store)->Reload();  // the next CONNECT / check sees the new files
//
// What it decides (refusals as shardmq/hooks.h describes):
//   CONNECT       no user name: allowed only with anonymous access on
//                 (MQTT 5 0x87, 3.1.1 0x05). With a password file, a user
//                 name must be in it with the right password (0x86 / 0x04).
//                 Without a password file a user name proves nothing: such
//                 clients count as anonymous. A user name taken from a
//                 verified client certificate (--tls-identity-as-username,
//                 ClientInfo::username_from_certificate) is authenticated
//                 already: no password is asked, it is not anonymous, and the
//                 ACL applies to it as to a password-checked name.
//                 ACL limit max_connections: one connection more than that
//                 with the same (checked) user name, across all shards, is
//                 refused (0x97 quota exceeded / 0x05); a takeover by the
//                 same client id replaces a connection and always passes.
//   PUBLISH       ACL write access (0x87); per-user max_qos (0x9B).
//   SUBSCRIBE     ACL read access (0x87); per-user shared_subscriptions
//                 false refuses "$share/..." (0x9E); max_subscriptions
//                 (0x97); max_qos lowers the granted QoS.
//   delivery      ACL read access for the topic (MayReceive): a
//                 subscription to "a/+" does not receive "a/secret" if the
//                 ACL denies it.
// Allowed requests answer NoOpinion, so a hook registered after this one may
// still refuse. The ACL's `limit publish_rate N` becomes the client's own
// publish rate (ConnectRequest::limits) when it is tighter than the daemon's
// --max-publish-rate; the broker throttles it (shardmq/options.h).
//
// Counting connections. Every connection with a checked user name is
// counted (limit or not, so that a reload adding a limit finds true counts)
// from OnAuthenticate, and released by OnClientDisconnected, which the
// broker calls exactly once for every connection that got CONNACK,
// including one taken over (kTakenOver). A CONNECT allowed here but refused
// afterwards (by the will's publish ACL, here or in another hook, or by a
// hook after this one) never reaches OnSessionEstablished: its count is
// returned at once when this hook refused the will, else at the next
// CONNECT on the same shard. A connection whose CONNECT this hook did not
// judge (an earlier hook decided, or a later one deferred past the next
// CONNECT) is counted when its session is established, without a limit
// check, so that its end balances.
//
// Threads: called on every shard at once. Each shard reads the files through
// its own Snapshot reader (one generation check per call, no lock), indexed
// by ClientInfo::shard; a reload publishes new files that the next check on
// each shard picks up, so connected clients keep their connection and are
// judged by the new ACL from then on. The connection counts are one map
// under a mutex, taken only on CONNECT and at a connection's end; what each
// shard counted for its connections is per shard, without a lock.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "auth/auth_config.h"
#include "shardmq/hooks.h"

namespace shardmq::daemon {

class FileAuthHooks : public Hooks {
 public:
  // `store` must outlive the broker.
  FileAuthHooks(const auth::AuthConfigStore& store, bool allow_anonymous, int shards);

  uint32_t Events() const override;
  AuthDecision OnAuthenticate(const ConnectRequest& request) override;
  void OnSessionEstablished(const ClientInfo& client) override;
  void OnSessionResumed(const ClientInfo& client) override;
  void OnClientDisconnected(const ClientInfo& client, DisconnectReason why) override;
  Decision OnPublishCheck(const ClientInfo& client, std::string_view topic, uint8_t qos,
                          bool retain) override;
  Decision OnSubscribe(const ClientInfo& client, SubscribeRequest& request) override;
  Decision OnDeliverCheck(const ClientInfo& subscriber, const MessageView& message) override;

  // Connections counted for `username` now (any thread; for tests and logs).
  uint32_t OpenConnections(std::string_view username) const;

 private:
  const auth::AuthConfig& Config(int shard);
  // The user name the ACL should see: none for a client whose user name was
  // neither checked against a password file nor taken from a certificate.
  std::optional<std::string_view> AclUser(const auth::AuthConfig& config,
                                          const ClientInfo& client) const;
  // The ACL's publish_rate for `user` into the client's limits.
  static void ApplyPublishRate(const auth::AuthConfig& config, std::optional<std::string_view> user,
                               ClientLimits* limits);
  // One more connection for `username`, unless `limit` is set and reached.
  bool Acquire(const std::string& username, std::optional<uint32_t> limit);
  void Release(const std::string& username);
  // The CONNECT counted last on `shard` is not getting in after all.
  void DropPending(int shard);
  // OnSessionEstablished / OnSessionResumed: the connection is in.
  void Admitted(const ClientInfo& client);

  const bool allow_anonymous_;
  // One per shard, each used only by its shard's thread. Cache-line padded:
  // a Reader's generation is written on every reload check.
  struct alignas(64) PerShard {
    explicit PerShard(const auth::Snapshot<auth::AuthConfig>& s) : reader(s) {}
    auth::Snapshot<auth::AuthConfig>::Reader reader;
    // The connections of this shard (their client ids' home) that hold a
    // count, by client id, with the user name counted: what each releases.
    // The broker has one connection per client id, on its home shard.
    absl::flat_hash_map<std::string, std::string> counted;
    // The CONNECT OnAuthenticate counted last here, until its session is
    // established. The broker carries a CONNECT from OnAuthenticate to
    // CONNACK or refusal without reading another (unless a later hook
    // defers it), so one slot is enough.
    struct Pending {
      std::string client_id;
      std::string username;
    };
    std::optional<Pending> pending;
  };
  std::vector<std::unique_ptr<PerShard>> shards_;
  // Open connections per checked user name, over all shards.
  // A pthread mutex (not absl::Mutex) so ThreadSanitizer sees it: Debian's
  // abseil is not instrumented.
  mutable std::mutex mutex_;
  absl::flat_hash_map<std::string, uint32_t> open_;  // guarded by mutex_
};

}  // namespace shardmq::daemon
