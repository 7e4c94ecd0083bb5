#include "file_auth_hooks.h"

namespace shardmq::daemon {

FileAuthHooks::FileAuthHooks(const auth::AuthConfigStore& store, bool allow_anonymous, int shards)
    : allow_anonymous_(allow_anonymous) {
  for (int i = 0; i < shards; ++i) {
    shards_.push_back(std::make_unique<PerShard>(store.snapshot()));
  }
}

uint32_t FileAuthHooks::Events() const {
  // Everything but the notifications this hook ignores.
  return kHookConnection | kHookPublish | kHookSubscribe | kHookDeliver;
}

const auth::AuthConfig& FileAuthHooks::Config(int shard) { return shards_[shard]->reader.Get(); }

std::optional<std::string_view> FileAuthHooks::AclUser(const auth::AuthConfig& config,
                                                       const ClientInfo& client) const {
  if (config.passwords == nullptr) return std::nullopt;
  return client.username;
}

AuthDecision FileAuthHooks::OnAuthenticate(const ConnectRequest& request) {
  const auth::AuthConfig& config = Config(request.client.shard);
  const bool checked_user = config.passwords != nullptr && request.client.username.has_value();
  if (!checked_user) {
    return allow_anonymous_ ? AuthDecision::NoOpinion() : AuthDecision::Deny(0x87);
  }
  // Mosquitto's PBKDF2 cost (101 iterations) is microseconds: fine inline.
  if (!request.password.has_value() ||
      !config.passwords->Check(*request.client.username, *request.password)) {
    return AuthDecision::Deny(0x86);
  }
  return AuthDecision::NoOpinion();
}

Decision FileAuthHooks::OnPublishCheck(const ClientInfo& client, std::string_view topic,
                                       uint8_t qos, bool retain) {
  (void)retain;
  const auth::AuthConfig& config = Config(client.shard);
  if (config.acl == nullptr) return Decision::NoOpinion();
  const std::optional<std::string_view> user = AclUser(config, client);
  if (!config.acl->MayPublish(user, client.client_id, topic)) return Decision::Deny(0x87);
  auth::UserLimits limits = config.acl->LimitsFor(user);
  if (limits.max_qos.has_value() && qos > *limits.max_qos) return Decision::Deny(0x9B);
  return Decision::NoOpinion();
}

Decision FileAuthHooks::OnSubscribe(const ClientInfo& client, SubscribeRequest& request) {
  const auth::AuthConfig& config = Config(client.shard);
  if (config.acl == nullptr) return Decision::NoOpinion();
  const std::optional<std::string_view> user = AclUser(config, client);
  if (!config.acl->MaySubscribe(user, client.client_id, request.filter)) {
    return Decision::Deny(0x87);
  }
  auth::UserLimits limits = config.acl->LimitsFor(user);
  if (request.shared && limits.shared_subscriptions == false) return Decision::Deny(0x9E);
  if (limits.max_subscriptions.has_value() &&
      request.subscription_count >= *limits.max_subscriptions) {
    return Decision::Deny(0x97);
  }
  if (limits.max_qos.has_value() && request.qos > *limits.max_qos) request.qos = *limits.max_qos;
  return Decision::NoOpinion();
}

Decision FileAuthHooks::OnDeliverCheck(const ClientInfo& subscriber, const MessageView& message) {
  if (subscriber.inline_client) return Decision::NoOpinion();  // the embedder is trusted
  const auth::AuthConfig& config = Config(subscriber.shard);
  if (config.acl == nullptr) return Decision::NoOpinion();
  if (!config.acl->MayReceive(AclUser(config, subscriber), subscriber.client_id, message.topic)) {
    return Decision::Deny(0x87);
  }
  return Decision::NoOpinion();
}

}  // namespace shardmq::daemon
