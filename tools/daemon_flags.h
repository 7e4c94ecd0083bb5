// Command-line flags of the shardmq daemon.
//
// Flags are abseil flags, but parsed by our own loop so that every mistake is
// reported as "--flag=value: why" and stops start-up, names may be written
// with dashes or underscores (--cpu-affinity, --cpu_affinity), and --listen
// may be given more than once.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "base/log.h"
#include "shardmq/options.h"

namespace shardmq::daemon {

struct DaemonConfig {
  Options options;
  base::LogLevel log_level = base::LogLevel::kInfo;
  // Built-in authentication (FileAuthHooks); empty paths: not used.
  std::string password_file;
  std::string acl_file;
  bool allow_anonymous = true;
  // Why allow_anonymous is what it is, for the start-up log ("listener
  // 0.0.0.0:1883 is not loopback and no --allow-anonymous was given").
  std::string anonymous_reason;
  // Some listener is reachable from other machines (not loopback).
  bool network_listener = false;
  // $SYS topics every this many seconds (0: off), and the admin HTTP
  // server (empty listen: off; token from --http-token or --http-token-file).
  uint32_t sys_interval_s = 10;
  std::string http_listen;
  std::string http_token;
  // Set when --help was asked for; the caller prints HelpText() and exits 0.
  bool help = false;
  bool version = false;
};

// Parses argv (argv[0] is the program). Errors name the flag and the value.
absl::StatusOr<DaemonConfig> ParseDaemonFlags(int argc, char** argv);

// The --help text: every flag with its default and description.
std::string HelpText();

// Parses a CPU list such as "0,2,4-7" (or "none"), as --cpu-affinity takes it.
absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view text);

}  // namespace shardmq::daemon
