// The daemon's configuration file (--config): TOML whose keys are the
// daemon's flag names, written with underscores, plus [[listener]] tables.
//
//   log_level = "debug"
//   max_packet_size = 65536
//   deny_subscribe = ["secret/#"]
//   [[listener]]
//   address = "0.0.0.0:8883"
//   protocol = "tls"
//
// LoadConfigFile turns the file into flag settings: the text each flag would
// get on the command line, and where in the file it came from. The daemon
// then parses and validates them exactly as it does command-line flags
// (daemon_flags.cc), so every value is checked in one place and a bad one is
// reported as "FILE:LINE: key = value: why". This file checks only what TOML
// adds: syntax, unknown keys, TOML types, integers beyond the flag's type,
// and the shape of listener tables.
//
// tools/shardmq.example.toml documents every key.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace shardmq::daemon {

// One flag as the file sets it.
struct ConfigSetting {
  // The flag's name: "max_packet_size", or "listen" for each [[listener]].
  std::string flag;
  // Its value as command-line text: "65536", "true", "tls://0.0.0.0:8883".
  std::string value;
  // For list flags (deny_subscribe) the items, which may contain commas and
  // so cannot travel through `value`.
  std::vector<std::string> items;
  // "FILE:LINE: key": where it was set, the prefix of messages about it.
  std::string where;
};

// Reads the TOML file at `path`. `flags` are the flag names the file may set
// (every daemon flag but --config); the flag types come from the abseil flag
// registry. Settings come in file order. Errors start with "FILE:LINE: ".
absl::StatusOr<std::vector<ConfigSetting>> LoadConfigFile(const std::string& path,
                                                          absl::Span<const std::string_view> flags);

// The protocols a [[listener]] may name: what the broker serves today.
inline constexpr std::string_view kListenerProtocols[] = {"tcp", "tls", "ws", "wss", "unix"};

}  // namespace shardmq::daemon
