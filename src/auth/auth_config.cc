#include "auth/auth_config.h"

#include <utility>

namespace shardmq::auth {

absl::StatusOr<std::shared_ptr<const AuthConfig>> AuthConfig::Load(const AuthPaths& paths) {
  auto config = std::make_shared<AuthConfig>();
  if (!paths.password_file.empty()) {
    absl::StatusOr<PasswordFile> passwords = PasswordFile::Load(paths.password_file);
    if (!passwords.ok()) return passwords.status();
    config->passwords = std::make_shared<const PasswordFile>(*std::move(passwords));
  }
  if (!paths.acl_file.empty()) {
    absl::StatusOr<AclFile> acl = AclFile::Load(paths.acl_file);
    if (!acl.ok()) return acl.status();
    config->acl = std::make_shared<const AclFile>(*std::move(acl));
  }
  return std::shared_ptr<const AuthConfig>(std::move(config));
}

absl::StatusOr<std::unique_ptr<AuthConfigStore>> AuthConfigStore::Create(AuthPaths paths) {
  absl::StatusOr<std::shared_ptr<const AuthConfig>> initial = AuthConfig::Load(paths);
  if (!initial.ok()) return initial.status();
  return std::make_unique<AuthConfigStore>(std::move(paths), *std::move(initial));
}

absl::Status AuthConfigStore::Reload() { return Reload(paths()); }

absl::Status AuthConfigStore::Reload(AuthPaths paths) {
  std::lock_guard<std::mutex> lock(reload_mutex_);
  absl::StatusOr<std::shared_ptr<const AuthConfig>> next = AuthConfig::Load(paths);
  if (!next.ok()) return next.status();
  snapshot_.Publish(*std::move(next));
  paths_ = std::move(paths);
  return absl::OkStatus();
}

AuthPaths AuthConfigStore::paths() const {
  std::lock_guard<std::mutex> lock(reload_mutex_);
  return paths_;
}

}  // namespace shardmq::auth
