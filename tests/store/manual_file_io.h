// A store::AsyncFileIo for tests: does the real pwrite/fdatasync/unlinkat,
// but completes only when the test says so: the test sees exactly which
// writes, syncs and deletions the writer issues, and when.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "store/async_file_io.h"

namespace shardmq::store {

class ManualFileIo : public AsyncFileIo {
 public:
  struct Op {
    bool sync;
    int fd;
    uint64_t offset;
    absl::Span<const uint8_t> bytes;
    Done done;
    bool unlink = false;
    std::string path;  // unlink: relative to fd
  };
  void Write(int fd, uint64_t offset, absl::Span<const uint8_t> bytes, Done done) override {
    ops.push_back({false, fd, offset, bytes, std::move(done)});
    ++writes;
  }
  void Sync(int fd, Done done) override {
    ops.push_back({true, fd, 0, {}, std::move(done)});
    ++syncs;
  }
  void Unlink(int dir_fd, std::string path, Done done) override {
    ops.push_back({false, dir_fd, 0, {}, std::move(done), true, std::move(path)});
    ++unlinks;
  }
  // Completes the oldest operation: `forced_result` instead of doing it when
  // set, and a write of at most `max_bytes`.
  void CompleteOne(std::optional<int> forced_result = std::nullopt, size_t max_bytes = SIZE_MAX) {
    ASSERT_FALSE(ops.empty());
    Op op = std::move(ops.front());
    ops.pop_front();
    int result = 0;
    if (forced_result) {
      result = *forced_result;
    } else if (op.unlink) {
      result = ::unlinkat(op.fd, op.path.c_str(), 0) == 0 ? 0 : -errno;
    } else if (op.sync) {
      result = ::fdatasync(op.fd) == 0 ? 0 : -errno;
    } else {
      const size_t n = std::min(max_bytes, op.bytes.size());
      const ssize_t w = ::pwrite(op.fd, op.bytes.data(), n, static_cast<off_t>(op.offset));
      result = w < 0 ? -errno : static_cast<int>(w);
    }
    op.done(result);
  }
  void CompleteAll() {
    for (int guard = 0; guard < 1000 && !ops.empty(); ++guard) CompleteOne();
  }
  bool AnyUnlinkQueued() const {
    for (const Op& op : ops) {
      if (op.unlink) return true;
    }
    return false;
  }
  std::deque<Op> ops;
  int writes = 0;
  int syncs = 0;
  int unlinks = 0;
};

}  // namespace shardmq::store
