#include "auth/password_file_edit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "auth/password_file.h"
#include "auth/text_file.h"

namespace shardmq::auth {
namespace {

// One line of a password file as it was, and what it says.
struct Line {
  std::string_view text;  // Without '\n' and without a trailing '\r'.
  bool crlf = false;      // Ended with "\r\n": an edited line keeps that ending.
  bool entry = false;     // Not blank and not a comment.
  std::string_view user;  // Entries only: before the first ':' (may be empty).
  std::string_view rest;  // Entries only: after the first ':' (npos: no ':').
  bool has_colon = false;
};

std::vector<Line> SplitLines(std::string_view contents) {
  std::vector<Line> lines;
  while (!contents.empty()) {
    size_t nl = contents.find('\n');
    Line line;
    line.text = contents.substr(0, nl);
    contents.remove_prefix(nl == std::string_view::npos ? contents.size() : nl + 1);
    if (!line.text.empty() && line.text.back() == '\r') {
      line.text.remove_suffix(1);
      line.crlf = true;
    }
    std::string_view trimmed = StripBlanks(line.text);
    line.entry = !trimmed.empty() && trimmed.front() != '#';
    if (line.entry) {
      size_t colon = line.text.find(':');
      line.has_colon = colon != std::string_view::npos;
      line.user = line.text.substr(0, colon);
      if (line.has_colon) line.rest = line.text.substr(colon + 1);
    }
    lines.push_back(line);
  }
  return lines;
}

void AppendLine(std::string& out, std::string_view text, bool crlf) {
  out.append(text);
  out.append(crlf ? "\r\n" : "\n");
}

std::string UserLine(std::string_view user, std::string_view hash) {
  return absl::StrFormat("%s:%s", user, hash);
}

absl::Status Annotate(const absl::Status& status, std::string_view name, int line_no) {
  return absl::Status(status.code(), absl::StrFormat("%s:%d: %s", name, line_no, status.message()));
}

std::string ErrnoText() { return std::strerror(errno); }

}  // namespace

absl::Status ValidateUserName(std::string_view user) {
  if (user.empty()) return absl::InvalidArgumentError("empty user name");
  for (char c : user) {
    if (c == ':') {
      return absl::InvalidArgumentError(
          absl::StrFormat("user name \"%s\" contains ':', the separator", user));
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("user name contains a control character");
    }
  }
  std::string_view trimmed = StripBlanks(user);
  if (trimmed.size() != user.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("user name \"%s\" starts or ends with a blank", user));
  }
  if (user.front() == '#') {
    return absl::InvalidArgumentError(
        absl::StrFormat("user name \"%s\" starts with '#' (it would be a comment)", user));
  }
  return absl::OkStatus();
}

absl::Status ValidatePassword(std::string_view password) {
  if (password.empty()) return absl::InvalidArgumentError("empty password");
  if (password.find_first_of("\r\n") != std::string_view::npos) {
    return absl::InvalidArgumentError("password contains a line break");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SetUserPassword(std::string_view contents, std::string_view name,
                                            std::string_view user, std::string_view password,
                                            int iterations) {
  if (absl::Status s = ValidateUserName(user); !s.ok()) return s;
  if (absl::Status s = ValidatePassword(password); !s.ok()) return s;
  if (absl::StatusOr<PasswordFile> old = PasswordFile::Parse(contents, name); !old.ok()) {
    return old.status();
  }
  absl::StatusOr<std::string> hash = HashPassword(password, iterations);
  if (!hash.ok()) return hash.status();

  std::string out;
  out.reserve(contents.size() + 160);
  bool replaced = false;
  for (const Line& line : SplitLines(contents)) {
    if (line.entry && line.user == user) {
      // The loader refuses duplicates, so this happens at most once.
      AppendLine(out, UserLine(user, *hash), line.crlf);
      replaced = true;
    } else {
      AppendLine(out, line.text, line.crlf);
    }
  }
  if (!replaced) AppendLine(out, UserLine(user, *hash), false);
  return out;
}

absl::StatusOr<std::string> DeleteUser(std::string_view contents, std::string_view name,
                                       std::string_view user) {
  if (absl::StatusOr<PasswordFile> old = PasswordFile::Parse(contents, name); !old.ok()) {
    return old.status();
  }
  std::string out;
  out.reserve(contents.size());
  bool found = false;
  for (const Line& line : SplitLines(contents)) {
    if (line.entry && line.user == user) {
      found = true;
      continue;
    }
    AppendLine(out, line.text, line.crlf);
  }
  if (!found) {
    return absl::NotFoundError(absl::StrFormat("%s: no user \"%s\"", name, user));
  }
  return out;
}

absl::StatusOr<std::string> HashPlainPasswords(std::string_view contents, std::string_view name,
                                               int iterations) {
  std::string out;
  out.reserve(contents.size() * 4);
  absl::flat_hash_set<std::string_view> seen;
  int line_no = 0;
  for (const Line& line : SplitLines(contents)) {
    ++line_no;
    if (!line.entry) {
      AppendLine(out, line.text, line.crlf);
      continue;
    }
    if (!line.has_colon) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: no ':' between user and password", name, line_no));
    }
    if (absl::Status s = ValidateUserName(line.user); !s.ok()) {
      return Annotate(s, name, line_no);
    }
    if (!seen.insert(line.user).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: duplicate user \"%s\"", name, line_no, line.user));
    }
    if (ParsePasswordHash(line.rest).ok()) {
      AppendLine(out, line.text, line.crlf);  // Already hashed: hashing it again would lock the
      continue;                               // user out (the hash would become the password).
    }
    if (line.rest.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: user \"%s\": empty password", name, line_no, line.user));
    }
    absl::StatusOr<std::string> hash = HashPassword(line.rest, iterations);
    if (!hash.ok()) return Annotate(hash.status(), name, line_no);
    AppendLine(out, UserLine(line.user, *hash), line.crlf);
  }
  return out;
}

absl::Status WriteFileAtomically(std::string_view path_view, std::string_view contents,
                                 mode_t new_file_mode) {
  std::string path(path_view);
  // Replace a symlink's target, not the link: package managers and config
  // management often link /etc/shardmq/passwd somewhere else.
  char resolved[PATH_MAX];
  struct stat old_stat {};
  bool exists = false;
  if (lstat(path.c_str(), &old_stat) == 0) {
    if (S_ISLNK(old_stat.st_mode)) {
      if (realpath(path.c_str(), resolved) == nullptr) {
        return absl::NotFoundError(
            absl::StrFormat("%s: cannot resolve symlink: %s", path, ErrnoText()));
      }
      path = resolved;
    }
    if (stat(path.c_str(), &old_stat) != 0) {
      return absl::InternalError(absl::StrFormat("%s: cannot stat: %s", path, ErrnoText()));
    }
    if (!S_ISREG(old_stat.st_mode)) {
      return absl::FailedPreconditionError(absl::StrFormat("%s: not a regular file", path));
    }
    exists = true;
  }

  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  std::string tmp = path + ".tmpXXXXXX";
  int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrFormat("%s: cannot create a temporary file in %s: %s", path, dir, ErrnoText()));
  }
  auto fail = [&](std::string_view what) {
    absl::Status status =
        absl::InternalError(absl::StrFormat("%s: %s: %s", tmp, what, ErrnoText()));
    if (fd >= 0) close(fd);
    unlink(tmp.c_str());
    return status;
  };
  // mkstemp creates 0600; copy the old file's mode and owner so the broker
  // (often another user in the file's group) can still read it.
  if (fchmod(fd, exists ? (old_stat.st_mode & 07777) : new_file_mode) != 0) {
    return fail("cannot set mode");
  }
  if (exists) {
    struct stat tmp_stat {};
    if (fstat(fd, &tmp_stat) != 0) return fail("cannot stat");
    if ((tmp_stat.st_uid != old_stat.st_uid || tmp_stat.st_gid != old_stat.st_gid) &&
        fchown(fd, old_stat.st_uid, old_stat.st_gid) != 0) {
      return fail("cannot give it the old file's owner and group");
    }
  }
  for (std::string_view rest = contents; !rest.empty();) {
    ssize_t n = write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("write failed");
    rest.remove_prefix(static_cast<size_t>(n));
  }
  if (fsync(fd) != 0) return fail("fsync failed");
  int closed = close(fd);
  fd = -1;
  if (closed != 0) return fail("close failed");
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status status = absl::InternalError(
        absl::StrFormat("%s: cannot rename %s over it: %s", path, tmp, ErrnoText()));
    unlink(tmp.c_str());
    return status;
  }
  // The rename is durable only once the directory entry is on disk.
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return absl::OkStatus();
}

}  // namespace shardmq::auth
