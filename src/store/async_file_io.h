// The store's view of asynchronous file I/O: the shard runtime implements it
// with its io_uring (shard::Shard::WriteFile / SyncFile), tests with a fake
// they complete by hand. Keeping the store behind this interface keeps it
// free of the shard runtime, as DESIGN.md's dependency order asks.
#pragma once

#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "absl/types/span.h"

namespace shardmq::store {

class AsyncFileIo {
 public:
  // Called later, on the same thread, with bytes written, 0 for a sync, or
  // -errno.
  using Done = absl::AnyInvocable<void(int result)>;
  virtual ~AsyncFileIo() = default;
  // pwrite(2) of `bytes` at `offset`; `bytes` stays valid until `done`.
  virtual void Write(int fd, uint64_t offset, absl::Span<const uint8_t> bytes, Done done) = 0;
  // fdatasync(2).
  virtual void Sync(int fd, Done done) = 0;
};

}  // namespace shardmq::store
