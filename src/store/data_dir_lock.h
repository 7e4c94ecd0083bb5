// One broker per data directory. Two processes appending to the same shard
// logs would interleave records and destroy both; an advisory lock on
// <data_dir>/LOCK, held for the broker's lifetime, makes the second one stop
// at start-up instead. flock(2) locks go with the process, so a broker killed
// with kill -9 leaves no stale lock behind.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace shardmq::store {

class DataDirLock {
 public:
  // Creates the directory if needed and takes the lock; fails, naming the
  // directory, if another process holds it. The lock file holds the owner's
  // pid, for the operator.
  static absl::StatusOr<std::unique_ptr<DataDirLock>> Acquire(const std::string& directory);
  ~DataDirLock();  // releases the lock (the file stays)

  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace shardmq::store
