// Command-line flags of the shardmq daemon, and its config file.
//
// Flags are abseil flags, but parsed by our own loop so that every mistake is
// reported as "--flag=value: why" and stops start-up, names may be written
// with dashes or underscores (--cpu-affinity, --cpu_affinity), and --listen
// may be given more than once.
//
// --config=FILE names a TOML file (config_file.h) that sets flags the same
// way: its values are applied first, then the command line's on top, then
// one validation runs over the result; a mistake in a value from the file is
// reported as "FILE:LINE: key = value: why".
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/log.h"
#include "shardmq/options.h"

namespace shardmq::daemon {

struct DaemonConfig {
  // The --config file, empty without one.
  std::string config_file;
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
  // Every flag's effective value as text, in --help order: what a reload
  // compares to tell which keys changed.
  std::vector<std::pair<std::string, std::string>> flag_values;
};

// Parses argv (argv[0] is the program) and the --config file it names.
// Errors name the flag (or the file, line and key) and the value. Every flag
// starts from its default, so calling it again (on SIGHUP) parses afresh.
// Not thread-safe: the flags are process-wide.
absl::StatusOr<DaemonConfig> ParseDaemonFlags(int argc, char** argv);

// The flags a config file may set: all but --config, in --help order.
std::vector<std::string_view> ConfigurableFlags();

// The --help text: every flag with its default and description.
std::string HelpText();

// Parses a CPU list such as "0,2,4-7" (or "none"), as --cpu-affinity takes it.
absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view text);

}  // namespace shardmq::daemon
