#include "net/unix_owner.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace shardmq::net {
namespace {

std::optional<uint32_t> Number(std::string_view text) {
  uint32_t n = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  // (uid_t)-1 means "unchanged" to chown: never a real owner.
  if (n == static_cast<uint32_t>(-1)) return std::nullopt;
  return n;
}

// Buffer size the *_r lookups ask for; they say ERANGE when it is too small.
size_t LookupBufferSize(int name) {
  const long size = sysconf(name);
  return size > 0 ? static_cast<size_t>(size) : 16384;
}

// Calls lookup(buffer) with a growing buffer; returns its errno-style result.
template <typename Lookup>
int WithBuffer(int sysconf_name, Lookup lookup) {
  std::vector<char> buffer(LookupBufferSize(sysconf_name));
  int error = lookup(buffer);
  while (error == ERANGE && buffer.size() < (1u << 20)) {
    buffer.resize(buffer.size() * 2);
    error = lookup(buffer);
  }
  return error;
}

absl::StatusOr<uid_t> ResolveUser(std::string_view user) {
  const std::string name(user);
  passwd entry{};
  passwd* found = nullptr;
  const int error = WithBuffer(_SC_GETPW_R_SIZE_MAX, [&](std::vector<char>& buffer) {
    return getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  });
  if (found != nullptr) return found->pw_uid;
  if (std::optional<uint32_t> uid = Number(user)) return static_cast<uid_t>(*uid);
  if (error != 0 && error != ENOENT && error != ESRCH) {
    return absl::UnavailableError(
        absl::StrFormat("cannot look user \"%s\" up: %s", user, std::strerror(error)));
  }
  return absl::NotFoundError(absl::StrFormat("no user \"%s\" on this system", user));
}

absl::StatusOr<gid_t> ResolveGroup(std::string_view group) {
  const std::string name(group);
  struct group entry {};
  struct group* found = nullptr;
  const int error = WithBuffer(_SC_GETGR_R_SIZE_MAX, [&](std::vector<char>& buffer) {
    return getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  });
  if (found != nullptr) return found->gr_gid;
  if (std::optional<uint32_t> gid = Number(group)) return static_cast<gid_t>(*gid);
  if (error != 0 && error != ENOENT && error != ESRCH) {
    return absl::UnavailableError(
        absl::StrFormat("cannot look group \"%s\" up: %s", group, std::strerror(error)));
  }
  return absl::NotFoundError(absl::StrFormat("no group \"%s\" on this system", group));
}

}  // namespace

absl::StatusOr<UnixOwner> ResolveUnixOwner(std::string_view user, std::string_view group) {
  UnixOwner owner;
  if (!user.empty()) {
    absl::StatusOr<uid_t> uid = ResolveUser(user);
    if (!uid.ok()) return uid.status();
    owner.uid = *uid;
  }
  if (!group.empty()) {
    absl::StatusOr<gid_t> gid = ResolveGroup(group);
    if (!gid.ok()) return gid.status();
    owner.gid = *gid;
  }
  return owner;
}

}  // namespace shardmq::net
