// Per-user limits from "limit" lines of an ACL file (the syntax and its
// precedence are documented in auth/acl_file.h). This file holds the value
// types and the parser of one line; AclFile owns the sections.
//
//   LimitSection global, alice;
//   absl::Status s = ParseLimitLine("max_qos 1", global);       // ok
//   s = ParseLimitLine("publish_rate unlimited", alice);         // ok
//   UserLimits l = ResolveLimits(global, &alice);  // max_qos 1, no rate limit
//
// Plain values; no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"

namespace shardmq::auth {

// The limits that apply to one client, after a user section's lines have
// overridden the global ones. An empty optional means the ACL file sets no
// limit; the broker's own flags (if any) still apply, and where both set one
// the broker should apply the stricter.
struct UserLimits {
  std::optional<uint8_t> max_qos;             // 0..2: highest QoS granted or accepted.
  std::optional<bool> shared_subscriptions;   // false: "$share/..." is refused.
  std::optional<uint32_t> max_subscriptions;  // Filters held by one session at once.
  std::optional<uint32_t> publish_rate;       // PUBLISH packets per second per connection.
  std::optional<uint32_t> max_connections;    // Simultaneous connections with this username.

  bool operator==(const UserLimits&) const = default;
};

// One section's "limit" lines before resolution. Each setting has three
// states: not mentioned (outer optional empty), "unlimited" (inner optional
// empty; it cancels a global limit in a user section) and a value.
struct LimitSection {
  template <typename T>
  using Setting = std::optional<std::optional<T>>;
  Setting<uint8_t> max_qos;
  Setting<bool> shared_subscriptions;
  Setting<uint32_t> max_subscriptions;
  Setting<uint32_t> publish_rate;
  Setting<uint32_t> max_connections;
};

// Parses the part of a "limit" line after the keyword ("max_qos 1") into
// `section`. The error says why, without a file position (the ACL parser
// adds "FILE:LINE:"); a setting given twice in one section is an error, so a
// typo cannot silently change a limit set earlier.
absl::Status ParseLimitLine(std::string_view text, LimitSection& section);

// Global settings overridden, setting by setting, by `user` (may be null).
UserLimits ResolveLimits(const LimitSection& global, const LimitSection* user);

}  // namespace shardmq::auth
