// store::AsyncFileIo over a shard's io_uring: the broker is the one module
// that knows both the store and the shard runtime (DESIGN.md's dependency
// order), so the adapter lives here.
//
// Lifecycle: made by Broker::Start with the shard's LogWriter, before the
// shard thread runs; Bind()s to its shard in BrokerShard's constructor, and
// used only on that shard's thread afterwards.
#pragma once

#include <string>
#include <utility>

#include "shard/reactor.h"
#include "store/async_file_io.h"

namespace shardmq::broker {

class ShardFileIo final : public store::AsyncFileIo {
 public:
  void Bind(shard::Shard* shard) { shard_ = shard; }
  void Write(int fd, uint64_t offset, absl::Span<const uint8_t> bytes, Done done) override {
    shard_->WriteFile(fd, offset, bytes, std::move(done));
  }
  void Sync(int fd, Done done) override { shard_->SyncFile(fd, std::move(done)); }
  void Unlink(int dir_fd, std::string path, Done done) override {
    shard_->UnlinkFile(dir_fd, std::move(path), std::move(done));
  }

 private:
  shard::Shard* shard_ = nullptr;
};

}  // namespace shardmq::broker
