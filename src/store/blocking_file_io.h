// store::AsyncFileIo done with plain blocking system calls, `done` called
// before the call returns. For start-up (RewriteDataDir, tools), where the
// thread may wait for the disk; never use it on a serving shard.
//
//   BlockingFileIo io;
//   auto writer = LogWriter::Open(options, next_sequence, io);
//   (*writer)->Append(type, payload);
//   (*writer)->Flush(0);  // written (and synced) when Flush returns
#pragma once

#include <string>

#include "store/async_file_io.h"

namespace shardmq::store {

class BlockingFileIo final : public AsyncFileIo {
 public:
  // One pwrite(2): a short write is reported as such (LogWriter writes the rest).
  void Write(int fd, uint64_t offset, absl::Span<const uint8_t> bytes, Done done) override;
  void Sync(int fd, Done done) override;
  void Unlink(int dir_fd, std::string path, Done done) override;
};

}  // namespace shardmq::store
