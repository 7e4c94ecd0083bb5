// Mosquitto-format password files: one "username:hash" per line, as written
// by mosquitto_passwd (Mosquitto 2.0 writes "$7$101$salt$hash" by default,
// "-H sha512" writes the older "$6$salt$hash").
//
//   absl::StatusOr<PasswordFile> file = PasswordFile::Load("/etc/shardmq/passwd");
//   if (!file.ok()) { ... file.status().message() is "FILE:LINE: why" ... }
//   bool ok = file->Check("alice", "secret");
//
// Supported hash formats (salt and hash are standard base64):
//   $7$<iterations>$<salt>$<hash>  PBKDF2-HMAC-SHA512, 64-byte hash
//   $6$<salt>$<hash>               SHA-512(password || salt), 64-byte hash
// Blank lines and lines whose first non-blank character is '#' are ignored;
// a trailing '\r' is dropped. Anything else that does not parse (no ':', an
// empty user name, an unknown or plain-text hash, bad base64, a wrong hash
// length, a duplicate user) stops loading with "FILE:LINE: why".
//
// Lifecycle and concurrency: loaded once on the control plane, then
// immutable; Check() is const and safe to call from any thread at once.
// Check() runs PBKDF2 with the file's iteration count (Mosquitto's 101 is
// cheap; the parser accepts up to 10,000,000, which is not): a shard that
// calls it while handling CONNECT should bound that cost.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace shardmq::auth {

// Mosquitto 2.0's mosquitto_passwd default iteration count for "$7$".
inline constexpr int kMosquittoDefaultIterations = 101;

// One user's stored credential.
struct PasswordHash {
  enum class Kind : uint8_t { kSha512, kPbkdf2Sha512 };
  Kind kind = Kind::kPbkdf2Sha512;
  int iterations = 0;  // Only for kPbkdf2Sha512.
  std::string salt;    // Raw bytes.
  std::string hash;    // Raw bytes, 64 for both kinds.
};

// Parses the part after "username:" ("$7$..." or "$6$..."). The error says
// why, without a file position; PasswordFile::Load adds it.
absl::StatusOr<PasswordHash> ParsePasswordHash(std::string_view text);

// True when `password` hashes to `stored`. The final comparison is constant
// time (CRYPTO_memcmp).
bool VerifyPassword(const PasswordHash& stored, std::string_view password);

// Hashes `password` the way mosquitto_passwd does by default: a random
// 12-byte salt (RAND_bytes), PBKDF2-HMAC-SHA512 with `iterations`, and
// returns "$7$<iterations>$<salt>$<hash>" for the right-hand side of a
// password file line. Fails when iterations < 1 or RAND_bytes fails.
absl::StatusOr<std::string> HashPassword(std::string_view password,
                                         int iterations = kMosquittoDefaultIterations);

class PasswordFile {
 public:
  // Reads and parses `path`; see the file comment for the format.
  static absl::StatusOr<PasswordFile> Load(std::string_view path);

  // Parses file contents; `name` is used in error messages only.
  static absl::StatusOr<PasswordFile> Parse(std::string_view contents, std::string_view name);

  // True when `user` is in the file and `password` is right. An unknown user
  // costs one hash too, against a dummy entry with the highest "$7$"
  // iteration count in the file, so an unknown user is never answered faster
  // than a known one (a known user whose hash has fewer iterations, e.g. an
  // old Mosquitto entry, still answers faster: rehash it with shardmq-passwd).
  bool Check(std::string_view user, std::string_view password) const;

  bool HasUser(std::string_view user) const;
  size_t size() const { return users_.size(); }

 private:
  absl::flat_hash_map<std::string, PasswordHash> users_;
  int dummy_iterations_ = kMosquittoDefaultIterations;  // For unknown users; see Check().
};

}  // namespace shardmq::auth
