// What a SIGHUP may change in a running daemon: the settings the config file
// and command line give now, compared with those the daemon runs with.
//
//   absl::StatusOr<DaemonConfig> next = ParseDaemonFlags(argc, argv);  // re-reads --config
//   ReloadPlan plan = PlanReload(running, *next);
//   ApplyLimits(plan, broker);  // first: if the broker refuses, apply nothing
//   // apply plan.log_level and plan.auth_paths, log plan.needs_restart
//
// Live without a restart: log_level (one atomic store), password_file /
// acl_file (the auth store reloads from new paths, auth/auth_config.h) and
// every limit (Broker::SetLimits, Broker::SetConnectionLimits: each shard
// takes its own copy on its own thread). Some limits bind only connections
// made after the change, because CONNACK told connected MQTT 5 clients the
// old value (shardmq/broker.h); the log says which. Listeners, shards, TLS
// files, the admin HTTP side and the other keys are fixed at start (sockets,
// threads, objects built once): they are reported and left alone.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "auth/auth_config.h"
#include "base/log.h"
#include "daemon_flags.h"
#include "shardmq/broker.h"

namespace shardmq::daemon {

struct ReloadPlan {
  // Set when it changed.
  std::optional<base::LogLevel> log_level;
  // Set when either path changed: the files to load now.
  std::optional<auth::AuthPaths> auth_paths;
  // Set when any key of Options::limits changed: all of them, as next has
  // them (Broker::SetLimits). Likewise the connection limits.
  std::optional<Limits> limits;
  std::optional<ConnectionLimits> connection_limits;
  // The limit keys that changed, in --help order (for Adopt).
  std::vector<std::string> limit_keys;
  // What changes, for the log: "log_level info -> debug", and for limits
  // "max_packet_size: 1048576 -> 4096 (new connections only)".
  std::vector<std::string> changes;
  // Keys whose value changed but needs a restart, in --help order. Only
  // names: a value may be a secret (auth_method_demo).
  std::vector<std::string> needs_restart;
};

// Compares the running settings with the new ones.
ReloadPlan PlanReload(const DaemonConfig& running, const DaemonConfig& next);

// Gives the broker plan.limits and plan.connection_limits, if set. The
// first error stops it (nothing of the plan applied then: SetLimits is
// asked first, and SetConnectionLimits refuses only what the flags refuse).
absl::Status ApplyLimits(const ReloadPlan& plan, Broker& broker);

// Makes `running` say `key` has next's value (after that change was applied),
// so that the next reload compares against what is in force.
void Adopt(const DaemonConfig& next, std::string_view key, DaemonConfig* running);

}  // namespace shardmq::daemon
