// Resolving the owner=user[:group] option of a unix:// listener to ids.
//
// Example:
//   auto ids = ResolveUnixOwner("mqtt", "mqtt");
//   if (!ids.ok()) { ... "no user \"mqtt\" on this system" ... }
//   chown(path, ids->uid, ids->gid);
#pragma once

#include <sys/types.h>

#include <string_view>

#include "absl/status/statusor.h"

namespace shardmq::net {

struct UnixOwner {
  // -1 (as uid_t / gid_t): leave unchanged, as chown(2) reads it.
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
};

// Looks `user` and `group` up in the system's account databases (getpwnam_r,
// getgrnam_r, so NSS sources count); a name that is not found but is all
// digits is taken as a number, like chown(1). Empty: unchanged. Runs once at
// start-up (the lookup may block on NSS). The error names the account that
// does not exist.
absl::StatusOr<UnixOwner> ResolveUnixOwner(std::string_view user, std::string_view group);

}  // namespace shardmq::net
