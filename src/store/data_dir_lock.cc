#include "store/data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace shardmq::store {

absl::StatusOr<std::unique_ptr<DataDirLock>> DataDirLock::Acquire(const std::string& directory) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrFormat("cannot create data directory %s: %s", directory, error.message()));
  }
  const std::string path = directory + "/LOCK";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrFormat("cannot open %s: %s", path, std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int saved = errno;
    char owner[32] = {};
    [[maybe_unused]] ssize_t n = ::pread(fd, owner, sizeof(owner) - 1, 0);
    ::close(fd);
    if (saved == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "data directory %s is in use by another shardmq (pid %s holds %s)", directory,
          owner[0] != '\0' ? std::string(owner, strcspn(owner, "\n")) : "?", path));
    }
    return absl::UnavailableError(
        absl::StrFormat("cannot lock %s: %s", path, std::strerror(saved)));
  }
  const std::string pid = absl::StrFormat("%d\n", ::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The pid is a courtesy to the operator; the lock is what matters.
  }
  return std::unique_ptr<DataDirLock>(new DataDirLock(fd));
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace shardmq::store
