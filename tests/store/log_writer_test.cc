#include "store/log_writer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <string>
#include <vector>

#include "manual_file_io.h"
#include "store/segment_recovery.h"
#include "temp_dir.h"

namespace shardmq::store {
namespace {

namespace fs = std::filesystem;

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

class LogWriterTest : public ::testing::Test {
 protected:
  std::unique_ptr<LogWriter> OpenWriter(bool sync = true, uint64_t segment_bytes = 1 << 20,
                                        uint64_t next_sequence = 0) {
    auto writer = LogWriter::Open(
        {.directory = dir_ + "/shard-0", .shard = 0, .segment_bytes = segment_bytes, .sync = sync},
        next_sequence, io_);
    EXPECT_TRUE(writer.ok()) << writer.status();
    return writer.ok() ? *std::move(writer) : nullptr;
  }

  std::vector<std::string> Recovered(RecoveryReport* report_out = nullptr) {
    std::vector<std::string> payloads;
    auto report = RecoverSegments(dir_ + "/shard-0", {}, [&](const Record& r, uint64_t) {
      payloads.emplace_back(r.payload.begin(), r.payload.end());
      return absl::OkStatus();
    });
    EXPECT_TRUE(report.ok()) << report.status();
    if (report_out != nullptr && report.ok()) *report_out = *report;
    return payloads;
  }

  testing::TempDir temp_{"shardmq-writer"};
  const std::string& dir_ = temp_.path();
  ManualFileIo io_;
};

TEST_F(LogWriterTest, RecordsAppendedWhileTheDiskIsBusyShareOneWriteAndOneSync) {
  auto writer = OpenWriter();
  std::vector<std::string> acked;
  auto ack = [&](std::string name) {
    return [&acked, name](absl::Status s) { acked.push_back(name + (s.ok() ? "" : "!")); };
  };
  EXPECT_EQ(writer->Append(0x10, Bytes("a")), 0u);
  writer->WhenDurable(ack("a"));
  writer->Flush(0);
  ASSERT_EQ(io_.writes, 1);
  // The disk is busy: three more clients' records wait and go together.
  EXPECT_EQ(writer->Append(0x10, Bytes("b")), 1u);
  writer->WhenDurable(ack("b"));
  writer->Append(0x10, Bytes("c"));
  writer->Append(0x10, Bytes("d"));
  writer->WhenDurable(ack("cd"));
  writer->Flush(0);
  EXPECT_EQ(io_.writes, 1);

  io_.CompleteOne();  // write of "a" (with the segment header)
  EXPECT_TRUE(acked.empty()) << "acknowledged before the sync";
  EXPECT_EQ(io_.syncs, 1);
  io_.CompleteOne();  // fdatasync of the segment
  io_.CompleteOne();  // fsync of the directory (the segment is new)
  EXPECT_EQ(acked, std::vector<std::string>{"a"});
  EXPECT_EQ(writer->durable_sequence(), 1u);
  EXPECT_EQ(io_.writes, 2) << "b, c, d go in one write";
  io_.CompleteAll();
  EXPECT_EQ(acked, (std::vector<std::string>{"a", "b", "cd"}));
  EXPECT_EQ(io_.writes, 2);
  EXPECT_EQ(io_.syncs, 3);  // one per batch, plus the directory once
  EXPECT_EQ(writer->durable_sequence(), 4u);
  EXPECT_EQ(writer->pending_bytes(), 0u);

  // With nothing pending a waiter runs at once.
  bool ran = false;
  writer->WhenDurable([&](absl::Status s) { ran = s.ok(); });
  EXPECT_TRUE(ran);
  EXPECT_EQ(Recovered(), (std::vector<std::string>{"a", "b", "c", "d"}));
}

TEST_F(LogWriterTest, AsyncModeAcknowledgesOnceWrittenWithoutSyncing) {
  auto writer = OpenWriter(/*sync=*/false);
  bool acked = false;
  writer->Append(0x10, Bytes("x"));
  writer->WhenDurable([&](absl::Status s) { acked = s.ok(); });
  writer->Flush(0);
  io_.CompleteOne();
  EXPECT_TRUE(acked);
  EXPECT_EQ(io_.syncs, 0);
}

TEST_F(LogWriterTest, AsyncModeSyncsWhatWasWrittenAtMostOncePerInterval) {
  constexpr int64_t kMs = 1'000'000;
  auto opened = LogWriter::Open(
      {.directory = dir_ + "/shard-0", .shard = 0, .sync = false, .sync_interval_ns = 100 * kMs}, 0,
      io_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  LogWriter& writer = **opened;
  bool acked = false;
  writer.Append(0x10, Bytes("x"));
  writer.WhenDurable([&](absl::Status s) { acked = s.ok(); });
  writer.Flush(10 * kMs);
  io_.CompleteOne();  // the write: acknowledged without waiting for a sync
  EXPECT_TRUE(acked);
  EXPECT_TRUE(writer.unsynced());
  EXPECT_EQ(io_.syncs, 0) << "synced before the interval since the last sync";
  writer.Flush(50 * kMs);
  EXPECT_EQ(io_.syncs, 0);
  writer.Flush(100 * kMs);  // the interval is up: one sync, then the directory
  ASSERT_EQ(io_.syncs, 1);
  EXPECT_FALSE(writer.unsynced());
  io_.CompleteAll();
  EXPECT_EQ(io_.syncs, 2);
  // Nothing new written: no more syncs however much time passes.
  writer.Flush(1000 * kMs);
  EXPECT_EQ(io_.syncs, 2);
  // Written again: synced no earlier than an interval after the last sync.
  writer.Append(0x10, Bytes("y"));
  writer.Flush(1010 * kMs);
  io_.CompleteAll();
  EXPECT_EQ(io_.syncs, 3) << "the last sync was 910 ms ago";
  EXPECT_EQ(Recovered(), (std::vector<std::string>{"x", "y"}));
}

TEST_F(LogWriterTest, AShortWriteContinuesWhereItStopped) {
  auto writer = OpenWriter();
  const std::string big(10000, 'q');
  writer->Append(0x10, Bytes(big));
  writer->Flush(0);
  io_.CompleteOne(std::nullopt, 100);  // only 100 bytes went
  ASSERT_EQ(io_.ops.size(), 1u);
  EXPECT_FALSE(io_.ops.front().sync);
  EXPECT_EQ(io_.ops.front().offset, 100u);
  io_.CompleteAll();
  EXPECT_EQ(Recovered(), std::vector<std::string>{big});
}

TEST_F(LogWriterTest, AFullDiskHoldsAcknowledgementsAndRetriesUntilSpaceReturns) {
  auto writer = OpenWriter();
  int acked = 0;
  writer->Append(0x10, Bytes("held"));
  writer->WhenDurable([&](absl::Status s) { acked += s.ok(); });
  writer->Flush(0);
  io_.CompleteOne(-ENOSPC);
  EXPECT_EQ(acked, 0);
  EXPECT_EQ(writer->error().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(writer->error().message().find("No space left on device"), std::string::npos);
  EXPECT_FALSE(writer->failed());
  // More records keep coming; nothing is retried before a second has passed.
  writer->Append(0x10, Bytes("later"));
  writer->Flush(500'000'000);
  EXPECT_TRUE(io_.ops.empty());
  writer->Flush(1'000'000'000);
  ASSERT_EQ(io_.ops.size(), 1u);
  EXPECT_EQ(io_.ops.front().offset, 0u) << "the held batch is written again from its start";
  io_.CompleteAll();
  EXPECT_EQ(acked, 1);
  EXPECT_TRUE(writer->error().ok());
  EXPECT_EQ(Recovered(), (std::vector<std::string>{"held", "later"}));
}

TEST_F(LogWriterTest, AFailedSyncStopsTheLogAndTellsEveryWaiter) {
  auto writer = OpenWriter();
  std::vector<absl::Status> results;
  writer->Append(0x10, Bytes("a"));
  writer->WhenDurable([&](absl::Status s) { results.push_back(s); });
  writer->Flush(0);
  writer->Append(0x10, Bytes("b"));
  writer->WhenDurable([&](absl::Status s) { results.push_back(s); });
  io_.CompleteOne();      // the write
  io_.CompleteOne(-EIO);  // the sync
  ASSERT_EQ(results.size(), 2u);
  EXPECT_FALSE(results[0].ok());
  EXPECT_NE(results[0].message().find("sync"), std::string::npos);
  EXPECT_FALSE(results[1].ok());
  EXPECT_TRUE(writer->failed());
  bool refused = false;
  writer->Append(0x10, Bytes("c"));
  writer->WhenDurable([&](absl::Status s) { refused = !s.ok(); });
  EXPECT_TRUE(refused);
}

TEST_F(LogWriterTest, SegmentsRotateAndRecoveryReadsThemInOrder) {
  for (bool sync : {true, false}) {
    SCOPED_TRACE(sync ? "sync" : "async");
    fs::remove_all(dir_ + "/shard-0");
    auto writer = OpenWriter(sync, /*segment_bytes=*/200);
    std::vector<std::string> expected;
    for (int i = 0; i < 30; ++i) {
      expected.push_back("record-" + std::to_string(i) + std::string(i, '.'));
      writer->Append(0x11, Bytes(expected.back()));
      if (i % 3 == 0) writer->Flush(0);
      if (i % 4 == 0) io_.CompleteAll();
    }
    writer->Flush(0);
    io_.CompleteAll();
    EXPECT_EQ(writer->durable_sequence(), 30u);
    RecoveryReport report;
    EXPECT_EQ(Recovered(&report), expected);
    EXPECT_GT(report.segments, 3u);
    EXPECT_EQ(report.next_sequence, 30u);
    writer.reset();
  }
}

TEST_F(LogWriterTest, AWriterReopenedAfterRecoveryContinuesTheSequence) {
  {
    auto writer = OpenWriter();
    writer->Append(0x10, Bytes("one"));
    writer->Flush(0);
    io_.CompleteAll();
  }
  RecoveryReport report;
  ASSERT_EQ(Recovered(&report).size(), 1u);
  auto writer = OpenWriter(true, 1 << 20, report.next_sequence);
  EXPECT_EQ(writer->Append(0x10, Bytes("two")), 1u);
  writer->Flush(0);
  io_.CompleteAll();
  EXPECT_EQ(Recovered(), (std::vector<std::string>{"one", "two"}));
}

TEST_F(LogWriterTest, DestroyedMidWriteTheBytesStayValidForTheDisk) {
  auto writer = OpenWriter();
  writer->Append(0x10, Bytes(std::string(4096, 'w')));
  writer->Flush(0);
  writer.reset();
  io_.CompleteAll();  // the write lands; its callback does nothing
  EXPECT_EQ(Recovered().size(), 1u);
}

}  // namespace
}  // namespace shardmq::store
