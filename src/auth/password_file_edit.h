// Edits of Mosquitto-format password files, as done by shardmq-passwd: add or
// update a user, delete one, hash a file of plain "user:password" lines. The
// edits are pure functions from old contents to new contents, so they are
// testable without a file system; WriteFileAtomically() puts the result on
// disk.
//
//   absl::StatusOr<std::string> old = ReadTextFile(path);
//   absl::StatusOr<std::string> next = SetUserPassword(*old, path, "alice", "pw");
//   if (next.ok()) status = WriteFileAtomically(path, *next);
//
// Every edit keeps the other lines byte for byte (comments, blank lines, the
// order of users); a changed user keeps its line's position; a new user is
// appended. The result always ends with '\n'. Before editing, the old
// contents must load as a PasswordFile (same rules, same "FILE:LINE: why"
// errors), so the tool never writes a file the broker would refuse.
//
// Control-plane code; no shared state.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shardmq::auth {

// The iteration count shardmq-passwd writes into "$7$" hashes. Check() runs
// PBKDF2 on the shard thread that handles CONNECT, so the cost per check is
// budgeted at about 1 ms: measured 0.53 us per iteration (OpenSSL 3.0,
// Debian 12, the 2-core Xeon build machine: `shardmq-passwd -I 1000000`
// takes 0.53 s), so 2,000 iterations cost ~1.05 ms per check, 20 times
// Mosquitto's 101 (0.05 ms). It is still ~100 times below OWASP's 210,000
// for PBKDF2-SHA512 (~110 ms here, which would stall a shard per CONNECT):
// the file itself must stay secret (mode 0600). Use -I for more where
// connects are rare, or verify on a worker thread.
inline constexpr int kDefaultIterations = 2'000;

// Why `user` cannot be stored in a password file, or OK. Refused: empty,
// ':' (the separator), control characters (newlines would split the line),
// a leading '#' or blank (the loader would read a comment or a different
// name) and a trailing blank.
absl::Status ValidateUserName(std::string_view user);

// Why `password` cannot be set, or OK: empty, or containing '\n' / '\r'
// (it could not be typed or piped back in).
absl::Status ValidatePassword(std::string_view password);

// `contents` with `user`'s hash replaced by a fresh one of `password`
// (PBKDF2-SHA512, `iterations`), or the user appended when absent. `name`
// is the file name for error messages.
absl::StatusOr<std::string> SetUserPassword(std::string_view contents, std::string_view name,
                                            std::string_view user, std::string_view password,
                                            int iterations = kDefaultIterations);

// `contents` without `user`'s line; NotFoundError when there is none.
absl::StatusOr<std::string> DeleteUser(std::string_view contents, std::string_view name,
                                       std::string_view user);

// mosquitto_passwd -U: every "user:password" line (the password is everything
// after the first ':') becomes "user:$7$...". Unlike mosquitto_passwd, which
// refuses blank lines and comments and hashes already-hashed lines again,
// comments and blank lines are kept and a line whose right-hand side already
// parses as a "$7$" or "$6$" hash is left alone, so running it twice is
// harmless. A password may contain ':' ("carol:x:y" sets "x:y", as
// mosquitto_passwd -b would; mosquitto_passwd -U cuts it to "x"). Errors ("FILE:LINE: why"): no
// ':', a bad user name, an empty password, a duplicate user.
absl::StatusOr<std::string> HashPlainPasswords(std::string_view contents, std::string_view name,
                                               int iterations = kDefaultIterations);

// Replaces `path` with `contents` so that a reader (the broker on SIGHUP)
// sees the old file or the new one, never a mix: writes a temporary file in
// the same directory, fsyncs it, renames it over `path` and fsyncs the
// directory. A symlink is followed (its target is replaced). An existing
// file keeps its mode and, when possible, its owner and group (otherwise the
// call fails rather than leave a file the broker's user cannot read); a new
// file gets `new_file_mode`. On error the temporary file is removed and
// `path` is untouched.
absl::Status WriteFileAtomically(std::string_view path, std::string_view contents,
                                 mode_t new_file_mode = 0600);

}  // namespace shardmq::auth
