// Leveled logging to stderr for the daemon and the runtime.
//
// Each call formats one line and hands it to the kernel in a single write(2),
// so lines from different shard threads never interleave. Logging is for
// start-up, shutdown and rare events; never log per packet on a shard thread.
//
// Example:
//   SHARDMQ_LOG(kInfo, "shard %d: listening on %s", id, addr);
#pragma once

#include <string_view>

#include "absl/strings/str_format.h"

namespace shardmq::base {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Sets the least severe level that is written. Thread-safe; the default is kInfo.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();

// Parses "debug", "info", "warning" or "error". Returns false for anything else.
bool ParseLogLevel(std::string_view text, LogLevel* level);

// Writes one complete line. Prefer the SHARDMQ_LOG macro, which skips
// formatting when the level is disabled.
void WriteLogLine(LogLevel level, std::string_view message);

}  // namespace shardmq::base

#define SHARDMQ_LOG(level, ...)                                               \
  do {                                                                        \
    if (::shardmq::base::LogLevel::level >= ::shardmq::base::GetLogLevel()) { \
      ::shardmq::base::WriteLogLine(::shardmq::base::LogLevel::level,         \
                                    ::absl::StrFormat(__VA_ARGS__));          \
    }                                                                         \
  } while (0)
