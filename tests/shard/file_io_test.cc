// Shard::WriteFile / SyncFile / UnlinkFile: file I/O through the shard's ring for the
// store's log. The bytes land where asked, callbacks run on the shard's
// thread, and Stop() waits for what is still being written.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "shard/shard_group.h"
#include "temp_dir.h"

namespace shardmq::shard {
namespace {

namespace fs = std::filesystem;

class FileHandler : public ShardHandler {
 public:
  explicit FileHandler(Shard& shard) : shard(shard) {}
  void OnOpen(ConnId, const PeerInfo&, absl::Span<const uint8_t>) override {}
  void OnData(ConnId, absl::Span<const uint8_t>) override {}
  void OnClosed(ConnId, CloseReason, void*) override {}
  void OnMail(int, const MailItem&) override {}
  Shard& shard;
};

class FileIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ShardGroup::Options options;
    options.shard_count = 1;
    auto group = ShardGroup::Create(options, [](Shard& s) -> std::unique_ptr<ShardHandler> {
      return std::make_unique<FileHandler>(s);
    });
    ASSERT_TRUE(group.ok()) << group.status();
    group_ = *std::move(group);
    ASSERT_TRUE(group_->Start().ok());
  }
  void TearDown() override {
    if (group_ != nullptr) {
      group_->Stop();
      group_->Join();
    }
  }

  // Runs `task` on shard 0 with its Shard and waits for it to have run.
  void OnShard(std::function<void(Shard&)> task) {
    std::promise<void> ran;
    ASSERT_TRUE(group_->PostExternal(0, [&](ShardHandler& h) {
      task(static_cast<FileHandler&>(h).shard);
      ran.set_value();
    }));
    ran.get_future().wait();
  }

  shardmq::testing::TempDir temp_{"shardmq-fileio"};
  const std::string& dir_ = temp_.path();
  std::unique_ptr<ShardGroup> group_;
};

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST_F(FileIoTest, WritesLandAtTheirOffsetsAndCallbacksRunOnTheShard) {
  const fs::path path = fs::path(dir_) / "log";
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  static const std::string kFirst = "first record;", kSecond = "second record";
  std::promise<std::vector<int>> results;
  std::atomic<std::thread::id> callback_thread{};
  std::thread::id shard_thread;
  OnShard([&](Shard& shard) {
    shard_thread = std::this_thread::get_id();
    auto collected = std::make_shared<std::vector<int>>();
    auto bytes = [](const std::string& s) {
      return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    };
    shard.WriteFile(fd, 0, bytes(kFirst), [&, collected](int first) {
      collected->push_back(first);
      callback_thread = std::this_thread::get_id();
      // A sync issued after the write it covers completed.
      shard.WriteFile(fd, kFirst.size(), bytes(kSecond), [&, collected](int second) {
        collected->push_back(second);
        shard.SyncFile(fd, [&, collected](int synced) {
          collected->push_back(synced);
          results.set_value(*collected);
        });
      });
    });
    EXPECT_EQ(shard.pending_file_ops(), 1u);
  });
  auto future = results.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(future.get(), (std::vector<int>{static_cast<int>(kFirst.size()),
                                            static_cast<int>(kSecond.size()), 0}));
  EXPECT_EQ(callback_thread.load(), shard_thread);
  EXPECT_EQ(ReadAll(path), kFirst + kSecond);
  ::close(fd);
}

TEST_F(FileIoTest, ErrorsComeBackAsNegativeErrno) {
  std::promise<int> result;
  OnShard([&](Shard& shard) {
    static const uint8_t kByte = 'x';
    shard.WriteFile(-1, 0, absl::MakeConstSpan(&kByte, 1), [&](int r) { result.set_value(r); });
  });
  auto future = result.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(future.get(), -EBADF);
}

TEST_F(FileIoTest, UnlinkRemovesTheFileRelativeToTheDirectory) {
  const fs::path path = fs::path(dir_) / "00000000000000000000.log";
  std::ofstream(path) << "old segment";
  const int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir_fd, 0);
  std::promise<std::vector<int>> results;
  OnShard([&](Shard& shard) {
    // The name's storage is gone before the ring submits the operation.
    std::string name = path.filename().string();
    shard.UnlinkFile(dir_fd, std::move(name), [&](int first) {
      shard.UnlinkFile(dir_fd, "missing.log", [&, first](int second) {
        shard.SyncFile(dir_fd, [&, first, second](int synced) {
          results.set_value({first, second, synced});
        });
      });
    });
    EXPECT_EQ(shard.pending_file_ops(), 1u);
  });
  auto future = results.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(future.get(), (std::vector<int>{0, -ENOENT, 0}));
  EXPECT_FALSE(fs::exists(path));
  ::close(dir_fd);
}

TEST_F(FileIoTest, StopWaitsForWritesInFlight) {
  const fs::path path = fs::path(dir_) / "big";
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  // 64 writes of 256 KiB issued in one go, then Stop() at once: every
  // callback runs and every byte is in the file when Join() returns.
  static const std::string kChunk(256 * 1024, 'z');
  constexpr int kWrites = 64;
  std::atomic<int> completed{0};
  std::atomic<int64_t> written{0};
  OnShard([&](Shard& shard) {
    for (int i = 0; i < kWrites; ++i) {
      shard.WriteFile(
          fd, uint64_t{kChunk.size()} * i,
          absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(kChunk.data()), kChunk.size()),
          [&](int r) {
            written += r;
            ++completed;
          });
    }
  });
  group_->Stop();
  group_->Join();
  group_.reset();
  EXPECT_EQ(completed.load(), kWrites);
  EXPECT_EQ(written.load(), int64_t{kWrites} * int64_t(kChunk.size()));
  EXPECT_EQ(fs::file_size(path), uint64_t{kWrites} * kChunk.size());
  ::close(fd);
}

}  // namespace
}  // namespace shardmq::shard
