// What a SIGHUP may change in a running daemon: the settings the config file
// and command line give now, compared with those the daemon runs with.
//
//   absl::StatusOr<DaemonConfig> next = ParseDaemonFlags(argc, argv);  // re-reads --config
//   ReloadPlan plan = PlanReload(running, *next);
//   // apply plan.log_level and plan.auth_paths, log plan.needs_restart
//
// Three keys take effect without a restart: log_level (one atomic store) and
// password_file / acl_file (the auth store reloads from new paths,
// auth/auth_config.h). Everything else is fixed at start: listeners and
// shards are sockets and threads, and the limits live in the broker's
// read-only context that every shard reads without a lock, so changing them
// would need a cross-shard handoff; such keys are reported and left alone.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "auth/auth_config.h"
#include "base/log.h"
#include "daemon_flags.h"

namespace shardmq::daemon {

struct ReloadPlan {
  // Set when it changed.
  std::optional<base::LogLevel> log_level;
  // Set when either path changed: the files to load now.
  std::optional<auth::AuthPaths> auth_paths;
  // What changes, for the log: "log_level info -> debug".
  std::vector<std::string> changes;
  // Keys whose value changed but needs a restart, in --help order. Only
  // names: a value may be a secret (auth_method_demo).
  std::vector<std::string> needs_restart;
};

// Compares the running settings with the new ones.
ReloadPlan PlanReload(const DaemonConfig& running, const DaemonConfig& next);

// Makes `running` say `key` has next's value (after that change was applied),
// so that the next reload compares against what is in force.
void Adopt(const DaemonConfig& next, std::string_view key, DaemonConfig* running);

}  // namespace shardmq::daemon
