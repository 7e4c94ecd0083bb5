// The store's view of asynchronous file I/O: the shard runtime implements it
// with its io_uring (shard::Shard::WriteFile / SyncFile / UnlinkFile), tests
// with a fake they complete by hand, start-up with BlockingFileIo
// (blocking_file_io.h). Keeping the store behind this interface keeps it free
// of the shard runtime, as DESIGN.md's dependency order asks.
//
// An implementation may call `done` later (io_uring) or at once, from inside
// the call that started the operation (BlockingFileIo): callers must cope
// with both.
#pragma once

#include <cstdint>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/types/span.h"

namespace shardmq::store {

class AsyncFileIo {
 public:
  // Called on the same thread, later or from inside the call, with bytes
  // written, 0 for a sync or an unlink, or -errno.
  using Done = absl::AnyInvocable<void(int result)>;
  virtual ~AsyncFileIo() = default;
  // pwrite(2) of `bytes` at `offset`; `bytes` stays valid until `done`.
  virtual void Write(int fd, uint64_t offset, absl::Span<const uint8_t> bytes, Done done) = 0;
  // fdatasync(2); on a directory's fd it makes the entries added or removed
  // in it durable.
  virtual void Sync(int fd, Done done) = 0;
  // unlinkat(2) of the file `path` names relative to the directory `dir_fd`
  // (compaction deletes old segments with it). Durable only once the
  // directory is synced.
  virtual void Unlink(int dir_fd, std::string path, Done done) = 0;
};

}  // namespace shardmq::store
