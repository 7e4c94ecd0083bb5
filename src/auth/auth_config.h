// The password file and ACL file the broker authenticates and authorises
// with, loaded together and replaced together on SIGHUP.
//
//   absl::StatusOr<std::unique_ptr<AuthConfigStore>> store =
//       AuthConfigStore::Create({.password_file = "/etc/shardmq/passwd",
//                                .acl_file = "/etc/shardmq/acl"});
//   // start-up: a bad file is fatal, print store.status()
//   Snapshot<AuthConfig>::Reader reader((*store)->snapshot());  // per shard
//   const AuthConfig& auth = reader.Get();                       // per CONNECT
//   // SIGHUP, on the control thread:
//   absl::Status s = (*store)->Reload();  // on error the old files stay in force; log s
//
// A reload is all or nothing: both files are read and parsed first, and only
// when both load is the new pair published. A connection that read the old
// pair keeps using it (it holds a shared_ptr) until it reads again, so nobody
// is dropped by a reload; already-connected clients are not re-authenticated.
//
// Concurrency: Reload() may be called from any thread (calls are serialised
// by a mutex that readers never take); readers use Snapshot's costs, see
// auth/snapshot.h.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "auth/acl_file.h"
#include "auth/password_file.h"
#include "auth/snapshot.h"

namespace shardmq::auth {

// Where the files are; an empty path means that file is not used.
struct AuthPaths {
  std::string password_file;
  std::string acl_file;
};

// One consistent pair of loaded files. Immutable once published.
struct AuthConfig {
  std::shared_ptr<const PasswordFile> passwords;  // Null: no password file.
  std::shared_ptr<const AclFile> acl;             // Null: no ACL file.

  // Loads both files; fails with the first file's "FILE:LINE: why" error.
  static absl::StatusOr<std::shared_ptr<const AuthConfig>> Load(const AuthPaths& paths);
};

class AuthConfigStore {
 public:
  // Loads the files once; the store exists only if they load.
  static absl::StatusOr<std::unique_ptr<AuthConfigStore>> Create(AuthPaths paths);

  AuthConfigStore(AuthPaths paths, std::shared_ptr<const AuthConfig> initial)
      : paths_(std::move(paths)), snapshot_(std::move(initial)) {}

  // Loads the files again from the same paths and publishes them when both
  // load; otherwise returns the error and the current pair stays.
  absl::Status Reload();

  // The same from other paths (the daemon's config file may name new ones):
  // when both load they are published and become the store's paths;
  // otherwise the current pair and paths stay.
  absl::Status Reload(AuthPaths paths);

  const Snapshot<AuthConfig>& snapshot() const { return snapshot_; }
  // A copy: a reload on another thread may replace them.
  AuthPaths paths() const;

 private:
  mutable std::mutex reload_mutex_;  // One reload at a time; never taken by readers.
  AuthPaths paths_;                  // Guarded by reload_mutex_.
  Snapshot<AuthConfig> snapshot_;
};

}  // namespace shardmq::auth
