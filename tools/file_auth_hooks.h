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
//                 clients count as anonymous.
//   PUBLISH       ACL write access (0x87); per-user max_qos (0x9B).
//   SUBSCRIBE     ACL read access (0x87); per-user shared_subscriptions
//                 false refuses "$share/..." (0x9E); max_subscriptions
//                 (0x97); max_qos lowers the granted QoS.
//   delivery      ACL read access for the topic (MayReceive): a
//                 subscription to "a/+" does not receive "a/secret" if the
//                 ACL denies it.
// Allowed requests answer NoOpinion, so a hook registered after this one may
// still refuse. Limits not enforced here: publish_rate, max_connections.
//
// Threads: called on every shard at once. Each shard reads the files through
// its own Snapshot reader (one generation check per call, no lock), indexed
// by ClientInfo::shard; a reload publishes new files that the next check on
// each shard picks up, so connected clients keep their connection and are
// judged by the new ACL from then on.
#pragma once

#include <memory>
#include <vector>

#include "auth/auth_config.h"
#include "shardmq/hooks.h"

namespace shardmq::daemon {

class FileAuthHooks : public Hooks {
 public:
  // `store` must outlive the broker.
  FileAuthHooks(const auth::AuthConfigStore& store, bool allow_anonymous, int shards);

  uint32_t Events() const override;
  AuthDecision OnAuthenticate(const ConnectRequest& request) override;
  Decision OnPublishCheck(const ClientInfo& client, std::string_view topic, uint8_t qos,
                          bool retain) override;
  Decision OnSubscribe(const ClientInfo& client, SubscribeRequest& request) override;
  Decision OnDeliverCheck(const ClientInfo& subscriber, const MessageView& message) override;

 private:
  const auth::AuthConfig& Config(int shard);
  // The user name the ACL should see: none for a client whose user name was
  // not checked against a password file.
  std::optional<std::string_view> AclUser(const auth::AuthConfig& config,
                                          const ClientInfo& client) const;

  const bool allow_anonymous_;
  // One per shard, each used only by its shard's thread. Cache-line padded:
  // a Reader's generation is written on every reload check.
  struct alignas(64) PerShard {
    explicit PerShard(const auth::Snapshot<auth::AuthConfig>& s) : reader(s) {}
    auth::Snapshot<auth::AuthConfig>::Reader reader;
  };
  std::vector<std::unique_ptr<PerShard>> shards_;
};

}  // namespace shardmq::daemon
