#include "file_auth_hooks.h"

namespace shardmq::daemon {
namespace {

// This abseil's string_view is its own type: map lookups need it.
absl::string_view Absl(std::string_view text) { return {text.data(), text.size()}; }

}  // namespace

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
  if (client.username_from_certificate) return client.username;
  if (config.passwords == nullptr) return std::nullopt;
  return client.username;
}

bool FileAuthHooks::Acquire(const std::string& username, std::optional<uint32_t> limit) {
  std::lock_guard lock(mutex_);
  uint32_t& open = open_[username];
  if (limit.has_value() && open >= *limit) {
    if (open == 0) open_.erase(username);
    return false;
  }
  ++open;
  return true;
}

void FileAuthHooks::Release(const std::string& username) {
  std::lock_guard lock(mutex_);
  auto it = open_.find(username);
  if (it == open_.end()) return;
  if (--it->second == 0) open_.erase(it);
}

uint32_t FileAuthHooks::OpenConnections(std::string_view username) const {
  std::lock_guard lock(mutex_);
  auto it = open_.find(Absl(username));
  return it == open_.end() ? 0 : it->second;
}

void FileAuthHooks::DropPending(int shard) {
  PerShard& state = *shards_[shard];
  if (!state.pending.has_value()) return;
  Release(state.pending->username);
  state.pending.reset();
}

AuthDecision FileAuthHooks::OnAuthenticate(const ConnectRequest& request) {
  const int shard = request.client.shard;
  // Still pending here: the CONNECT before this one was refused after this
  // hook allowed it (see the file comment).
  DropPending(shard);
  const auth::AuthConfig& config = Config(shard);
  const ClientInfo& client = request.client;
  if (!client.username_from_certificate) {
    const bool checked_user = config.passwords != nullptr && client.username.has_value();
    if (!checked_user) {
      if (!allow_anonymous_) return AuthDecision::Deny(0x87);
      ApplyPublishRate(config, std::nullopt, request.limits);
      return AuthDecision::NoOpinion();
    }
    // Mosquitto's PBKDF2 cost (101 iterations) is microseconds: fine inline.
    if (!request.password.has_value() ||
        !config.passwords->Check(*client.username, *request.password)) {
      return AuthDecision::Deny(0x86);
    }
  }
  // A checked user name from here on.
  std::string username(*AclUser(config, client));
  PerShard& state = *shards_[shard];
  std::optional<uint32_t> limit;
  if (config.acl != nullptr) limit = config.acl->LimitsFor(username).max_connections;
  // A takeover replaces this user's connection with the same client id (its
  // count is released when the broker ends it): not one more connection.
  auto old = state.counted.find(Absl(client.client_id));
  if (old != state.counted.end() && old->second == username) limit.reset();
  if (!Acquire(username, limit)) return AuthDecision::Deny(0x97);
  ApplyPublishRate(config, username, request.limits);
  state.pending = PerShard::Pending{std::string(client.client_id), std::move(username)};
  return AuthDecision::NoOpinion();
}

void FileAuthHooks::ApplyPublishRate(const auth::AuthConfig& config,
                                     std::optional<std::string_view> user, ClientLimits* limits) {
  if (config.acl == nullptr || limits == nullptr) return;
  const std::optional<uint32_t> rate = config.acl->LimitsFor(user).publish_rate;
  // The ACL may tighten --max-publish-rate, never loosen it.
  if (rate.has_value() && *rate != 0) {
    limits->publish_rate =
        limits->publish_rate == 0 ? *rate : std::min(limits->publish_rate, *rate);
  }
}

void FileAuthHooks::Admitted(const ClientInfo& client) {
  PerShard& state = *shards_[client.shard];
  std::string username;
  if (state.pending.has_value() && state.pending->client_id == client.client_id) {
    username = std::move(state.pending->username);
    state.pending.reset();
  } else {
    // OnAuthenticate did not count it (see the file comment); an inline
    // client has no user name and is not counted.
    std::optional<std::string_view> user = AclUser(Config(client.shard), client);
    if (!user.has_value() || client.inline_client) return;
    username = std::string(*user);
    Acquire(username, std::nullopt);
  }
  // A takeover's old connection was released already (OnClientDisconnected
  // comes first); this only guards against counting one client id twice.
  auto [it, inserted] = state.counted.try_emplace(std::string(client.client_id), username);
  if (!inserted) {
    Release(it->second);
    it->second = std::move(username);
  }
}

void FileAuthHooks::OnSessionEstablished(const ClientInfo& client) { Admitted(client); }

void FileAuthHooks::OnSessionResumed(const ClientInfo& client) { Admitted(client); }

void FileAuthHooks::OnClientDisconnected(const ClientInfo& client, DisconnectReason why) {
  (void)why;  // a takeover ends the old connection like any other end
  PerShard& state = *shards_[client.shard];
  auto it = state.counted.find(Absl(client.client_id));
  if (it == state.counted.end()) return;
  Release(it->second);
  state.counted.erase(it);
}

Decision FileAuthHooks::OnPublishCheck(const ClientInfo& client, std::string_view topic,
                                       uint8_t qos, bool retain) {
  (void)retain;
  const auth::AuthConfig& config = Config(client.shard);
  if (config.acl == nullptr) return Decision::NoOpinion();
  const std::optional<std::string_view> user = AclUser(config, client);
  Decision decision = Decision::NoOpinion();
  if (!config.acl->MayPublish(user, client.client_id, topic)) {
    decision = Decision::Deny(0x87);
  } else {
    auth::UserLimits limits = config.acl->LimitsFor(user);
    if (limits.max_qos.has_value() && qos > *limits.max_qos) decision = Decision::Deny(0x9B);
  }
  // The will of the CONNECT just counted: refusing it refuses the CONNECT.
  const std::optional<PerShard::Pending>& pending = shards_[client.shard]->pending;
  if (decision.kind == Decision::Kind::kDeny && pending.has_value() &&
      pending->client_id == client.client_id) {
    DropPending(client.shard);
  }
  return decision;
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
