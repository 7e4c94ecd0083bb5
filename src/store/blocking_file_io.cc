#include "store/blocking_file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace shardmq::store {

void BlockingFileIo::Write(int fd, uint64_t offset, absl::Span<const uint8_t> bytes, Done done) {
  ssize_t written;
  do {
    written = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
  } while (written < 0 && errno == EINTR);
  done(written < 0 ? -errno : static_cast<int>(written));
}

void BlockingFileIo::Sync(int fd, Done done) { done(::fdatasync(fd) == 0 ? 0 : -errno); }

void BlockingFileIo::Unlink(int dir_fd, std::string path, Done done) {
  done(::unlinkat(dir_fd, path.c_str(), 0) == 0 ? 0 : -errno);
}

}  // namespace shardmq::store
