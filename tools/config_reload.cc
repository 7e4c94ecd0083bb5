#include "config_reload.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace shardmq::daemon {
namespace {

// The keys a reload applies besides the limits below; every other changed
// key needs a restart.
constexpr std::string_view kLiveKeys[] = {"log_level", "password_file", "acl_file"};

// Keys of Options::limits (Broker::SetLimits). `new_connections_only`: a
// value CONNACK tells the client (or one fixed at CONNECT), which binds a
// connected client until it reconnects (shardmq/broker.h).
struct LimitKey {
  std::string_view key;
  bool new_connections_only;
};
constexpr LimitKey kLimitKeys[] = {
    {"max_publish_rate", false},
    {"max_publish_bytes_rate", false},
    {"max_packet_size", true},
    {"max_inflight", false},
    {"max_queued_messages", false},
    {"max_queued_bytes", false},
    {"queue_qos0_offline", false},
    {"max_outbound_bytes", false},
    {"max_subscriptions_per_client", false},
    {"max_topic_length", false},
    {"max_topic_levels", false},
    {"topic_alias_maximum", true},
    {"validate_utf8_payload", false},
    {"connect_timeout_ms", false},
    {"deny_subscribe", false},
    {"max_session_expiry", true},
    {"max_keepalive", true},
    {"receive_maximum", true},
    {"max_qos", true},
    {"retain_available", true},
};
// Options' connection limits (Broker::SetConnectionLimits): for sockets
// accepted from then on.
constexpr std::string_view kConnectionLimitKeys[] = {
    "max_connections", "max_connections_per_address", "max_connect_rate_per_address"};

const LimitKey* FindLimitKey(std::string_view key) {
  for (const LimitKey& limit : kLimitKeys) {
    if (limit.key == key) return &limit;
  }
  return nullptr;
}

bool IsConnectionLimitKey(std::string_view key) {
  return std::find(std::begin(kConnectionLimitKeys), std::end(kConnectionLimitKeys), key) !=
         std::end(kConnectionLimitKeys);
}

ConnectionLimits ConnectionLimitsOf(const Options& options) {
  return {options.max_connections, options.max_connections_per_address,
          options.max_connect_rate_per_address};
}

const std::string* FlagValue(const DaemonConfig& config, std::string_view key) {
  for (const auto& [name, value] : config.flag_values) {
    if (name == key) return &value;
  }
  return nullptr;
}

std::string Text(const DaemonConfig& config, std::string_view key) {
  const std::string* value = FlagValue(config, key);
  return value == nullptr ? "" : *value;
}

std::string Shown(const std::string& path) { return path.empty() ? "(none)" : path; }

}  // namespace

ReloadPlan PlanReload(const DaemonConfig& running, const DaemonConfig& next) {
  ReloadPlan plan;
  for (const auto& [key, value] : next.flag_values) {
    const std::string* before = FlagValue(running, key);
    if (before == nullptr || *before == value) continue;
    if (const LimitKey* limit = FindLimitKey(key); limit != nullptr) {
      plan.limits = next.options.limits;
      plan.limit_keys.push_back(key);
      plan.changes.push_back(
          absl::StrFormat("%s: %s -> %s%s", key, Shown(*before), Shown(value),
                          limit->new_connections_only ? " (new connections only)" : ""));
    } else if (IsConnectionLimitKey(key)) {
      plan.connection_limits = ConnectionLimitsOf(next.options);
      plan.limit_keys.push_back(key);
      plan.changes.push_back(absl::StrFormat("%s: %s -> %s", key, Shown(*before), Shown(value)));
    } else if (std::find(std::begin(kLiveKeys), std::end(kLiveKeys), key) == std::end(kLiveKeys)) {
      plan.needs_restart.push_back(key);
    }
  }
  // allow_anonymous = "auto" decides from the listeners and the password
  // file; the hook was built with the decision, so a new one waits too.
  if (running.allow_anonymous != next.allow_anonymous &&
      std::find(plan.needs_restart.begin(), plan.needs_restart.end(), "allow_anonymous") ==
          plan.needs_restart.end()) {
    plan.needs_restart.push_back("allow_anonymous");
  }
  if (running.log_level != next.log_level) {
    plan.log_level = next.log_level;
    plan.changes.push_back(
        absl::StrFormat("log_level %s -> %s", Text(running, "log_level"), Text(next, "log_level")));
  }
  if (running.password_file != next.password_file || running.acl_file != next.acl_file) {
    plan.auth_paths =
        auth::AuthPaths{.password_file = next.password_file, .acl_file = next.acl_file};
    if (running.password_file != next.password_file) {
      plan.changes.push_back(absl::StrFormat("password_file %s -> %s", Shown(running.password_file),
                                             Shown(next.password_file)));
    }
    if (running.acl_file != next.acl_file) {
      plan.changes.push_back(
          absl::StrFormat("acl_file %s -> %s", Shown(running.acl_file), Shown(next.acl_file)));
    }
  }
  return plan;
}

absl::Status ApplyLimits(const ReloadPlan& plan, Broker& broker) {
  if (plan.limits.has_value()) {
    if (absl::Status status = broker.SetLimits(*plan.limits); !status.ok()) return status;
  }
  if (plan.connection_limits.has_value()) {
    return broker.SetConnectionLimits(*plan.connection_limits);
  }
  return absl::OkStatus();
}

void Adopt(const DaemonConfig& next, std::string_view key, DaemonConfig* running) {
  if (key == "log_level") running->log_level = next.log_level;
  // Every limit is applied together (ApplyLimits), so the whole struct is.
  if (FindLimitKey(key) != nullptr) running->options.limits = next.options.limits;
  if (IsConnectionLimitKey(key)) {
    running->options.max_connections = next.options.max_connections;
    running->options.max_connections_per_address = next.options.max_connections_per_address;
    running->options.max_connect_rate_per_address = next.options.max_connect_rate_per_address;
  }
  if (key == "password_file") running->password_file = next.password_file;
  if (key == "acl_file") running->acl_file = next.acl_file;
  const std::string* value = FlagValue(next, key);
  for (auto& [name, old] : running->flag_values) {
    if (name == key && value != nullptr) old = *value;
  }
}

}  // namespace shardmq::daemon
