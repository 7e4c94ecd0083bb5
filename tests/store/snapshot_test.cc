// Snapshots and compaction: LogWriter::BeginSnapshot / EndSnapshot, the
// deletion of old segments once the END is durable, recovery from the newest
// complete snapshot, and BlockingFileIo (completions from inside the call).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "manual_file_io.h"
#include "store/blocking_file_io.h"
#include "store/log_format.h"
#include "store/log_writer.h"
#include "store/segment_recovery.h"
#include "temp_dir.h"

namespace shardmq::store {
namespace {

namespace fs = std::filesystem;

constexpr uint8_t kUser = 0x10;

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The records of one segment file as "type:payload" ("B" and "E" for the
// snapshot markers), without recovery's side effects.
std::vector<std::string> RecordsIn(const fs::path& path) {
  const std::string contents = ReadFile(path);
  std::vector<std::string> out;
  if (contents.size() < kSegmentHeaderSize) return out;
  ScanRecords(Bytes(contents).subspan(kSegmentHeaderSize), 0, [&](const Record& r) {
    if (r.type == kRecordSnapshotBegin) {
      out.push_back("B");
    } else if (r.type == kRecordSnapshotEnd) {
      out.push_back("E");
    } else {
      out.emplace_back(r.payload.begin(), r.payload.end());
    }
  });
  return out;
}

// Segment file names in the directory, oldest first.
std::vector<uint64_t> SegmentsOf(const std::string& directory) {
  std::vector<uint64_t> out;
  auto listed = ListSegmentFiles(directory);
  EXPECT_TRUE(listed.ok()) << listed.status();
  if (listed.ok()) {
    for (const SegmentFile& s : *listed) out.push_back(s.first_sequence);
  }
  return out;
}

class SnapshotTest : public ::testing::Test {
 protected:
  std::string log_dir() const { return dir_ + "/shard-0"; }
  std::string SegmentPath(uint64_t first) const { return log_dir() + "/" + SegmentFileName(first); }

  std::unique_ptr<LogWriter> OpenWriter(bool sync = true, uint64_t segment_bytes = 1 << 20,
                                        uint64_t next_sequence = 0, AsyncFileIo* io = nullptr) {
    auto writer = LogWriter::Open(
        {.directory = log_dir(), .shard = 0, .segment_bytes = segment_bytes, .sync = sync},
        next_sequence, io != nullptr ? *io : io_);
    EXPECT_TRUE(writer.ok()) << writer.status();
    return writer.ok() ? *std::move(writer) : nullptr;
  }

  struct Recovered {
    RecoveryReport report;
    std::vector<std::pair<uint64_t, std::string>> records;
    std::vector<std::string> payloads() const {
      std::vector<std::string> out;
      for (const auto& [sequence, payload] : records) out.push_back(payload);
      return out;
    }
  };
  Recovered Recover() {
    Recovered out;
    auto report = RecoverSegments(log_dir(), {}, [&](const Record& r, uint64_t sequence) {
      EXPECT_GE(r.type, kFirstUserRecordType) << "a store record reached the visitor";
      out.records.emplace_back(sequence, std::string(r.payload.begin(), r.payload.end()));
      return absl::OkStatus();
    });
    EXPECT_TRUE(report.ok()) << report.status();
    if (report.ok()) out.report = *report;
    return out;
  }

  void Append(LogWriter& writer, const std::vector<std::string>& payloads) {
    for (const std::string& p : payloads) writer.Append(kUser, Bytes(p));
  }

  testing::TempDir temp_{"shardmq-snapshot"};
  const std::string& dir_ = temp_.path();
  ManualFileIo io_;
};

TEST_F(SnapshotTest, BeginStartsANewSegmentAndOldOnesGoOnceTheEndIsDurable) {
  auto writer = OpenWriter();
  Append(*writer, {"a", "b"});
  writer->Flush(0);
  io_.CompleteAll();
  ASSERT_EQ(SegmentsOf(log_dir()), std::vector<uint64_t>{0});

  EXPECT_EQ(writer->BeginSnapshot(), 2u);
  EXPECT_TRUE(writer->in_snapshot());
  Append(*writer, {"state-1", "state-2"});
  EXPECT_EQ(writer->EndSnapshot(), 5u);
  writer->Flush(0);
  // The new segment's write, its fdatasync, the directory's fsync: only then
  // is the END durable, and only then may segment 0 go.
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(io_.ops.empty());
    EXPECT_FALSE(io_.ops.front().unlink) << "deleted before the END was durable, op " << i;
    io_.CompleteOne();
  }
  EXPECT_EQ(writer->durable_sequence(), 6u);
  ASSERT_EQ(io_.ops.size(), 1u);
  EXPECT_TRUE(io_.ops.front().unlink);
  EXPECT_EQ(io_.ops.front().path, SegmentFileName(0));
  EXPECT_TRUE(fs::exists(SegmentPath(0)));
  EXPECT_TRUE(writer->compaction_pending());
  io_.CompleteOne();  // the unlink
  EXPECT_FALSE(fs::exists(SegmentPath(0)));
  ASSERT_EQ(io_.ops.size(), 1u);
  EXPECT_TRUE(io_.ops.front().sync) << "the directory is synced after the deletions";
  io_.CompleteOne();
  EXPECT_FALSE(writer->compaction_pending());
  EXPECT_EQ(writer->segments_deleted(), 1u);
  EXPECT_TRUE(writer->last_compaction_error().ok());

  EXPECT_EQ(SegmentsOf(log_dir()), std::vector<uint64_t>{2});
  EXPECT_EQ(RecordsIn(SegmentPath(2)), (std::vector<std::string>{"B", "state-1", "state-2", "E"}));
  Recovered r = Recover();
  EXPECT_EQ(r.payloads(), (std::vector<std::string>{"state-1", "state-2"}));
  EXPECT_TRUE(r.report.used_snapshot);
  EXPECT_EQ(r.report.snapshot_sequence, 2u);
  EXPECT_EQ(r.report.next_sequence, 6u);
  EXPECT_EQ(r.records.front().first, 3u);
}

TEST_F(SnapshotTest, ASnapshotOnAFreshSegmentStartsThatSegment) {
  auto writer = OpenWriter(true, 1 << 20, /*next_sequence=*/7);
  EXPECT_EQ(writer->BeginSnapshot(), 7u);
  Append(*writer, {"s"});
  writer->EndSnapshot();
  writer->Flush(0);
  io_.CompleteAll();
  EXPECT_EQ(SegmentsOf(log_dir()), std::vector<uint64_t>{7});
  EXPECT_EQ(RecordsIn(SegmentPath(7)), (std::vector<std::string>{"B", "s", "E"}));
  EXPECT_EQ(io_.unlinks, 0);
}

TEST_F(SnapshotTest, RecordsAppendedWhileAWriteIsInFlightKeepTheirSegment) {
  for (bool sync : {true, false}) {
    SCOPED_TRACE(sync ? "sync" : "async");
    fs::remove_all(log_dir());
    auto writer = OpenWriter(sync);
    std::vector<std::string> acked;
    writer->Append(kUser, Bytes("a"));
    writer->Flush(0);  // "a" on its way
    writer->Append(kUser, Bytes("b"));
    writer->WhenDurable([&](absl::Status s) { acked.push_back(s.ok() ? "b" : "b!"); });
    writer->BeginSnapshot();  // 2
    Append(*writer, {"s1", "s2"});
    writer->EndSnapshot();  // 5
    writer->WhenDurable([&](absl::Status s) { acked.push_back(s.ok() ? "snap" : "snap!"); });
    writer->Append(kUser, Bytes("after"));
    writer->Flush(0);
    EXPECT_EQ(writer->pending_bytes() > 0, true);
    // Step by step: no deletion is queued before the END is durable.
    for (int guard = 0; guard < 100 && !io_.ops.empty(); ++guard) {
      if (io_.ops.front().unlink) {
        EXPECT_GE(writer->durable_sequence(), 6u);
        EXPECT_EQ(acked, (std::vector<std::string>{"b", "snap"}));
      }
      io_.CompleteOne();
      writer->Flush(0);
    }
    EXPECT_EQ(writer->durable_sequence(), 7u);
    EXPECT_EQ(acked, (std::vector<std::string>{"b", "snap"}));
    EXPECT_EQ(SegmentsOf(log_dir()), std::vector<uint64_t>{2});
    EXPECT_EQ(RecordsIn(SegmentPath(2)), (std::vector<std::string>{"B", "s1", "s2", "E", "after"}));
    EXPECT_EQ(Recover().payloads(), (std::vector<std::string>{"s1", "s2", "after"}));
    writer.reset();
  }
}

TEST_F(SnapshotTest, AsyncModeSyncsTheSnapshotAndDirectoryBeforeDeleting) {
  auto writer = OpenWriter(/*sync=*/false);
  Append(*writer, {"a"});
  writer->Flush(0);
  io_.CompleteAll();
  writer->BeginSnapshot();
  Append(*writer, {"s"});
  writer->EndSnapshot();
  writer->Flush(0);
  // Rotation: the old segment is synced before the new one gets records.
  ASSERT_EQ(io_.ops.size(), 1u);
  EXPECT_TRUE(io_.ops.front().sync);
  io_.CompleteOne();
  ASSERT_EQ(io_.ops.size(), 1u);
  EXPECT_FALSE(io_.ops.front().sync);  // the snapshot's write
  io_.CompleteOne();
  EXPECT_EQ(writer->durable_sequence(), 4u);  // written: durable in async mode
  // Before the unlink: fdatasync of the segment, fsync of the directory.
  ASSERT_EQ(io_.ops.size(), 1u);
  EXPECT_TRUE(io_.ops.front().sync);
  io_.CompleteOne();
  ASSERT_EQ(io_.ops.size(), 1u);
  EXPECT_TRUE(io_.ops.front().sync);
  io_.CompleteOne();
  ASSERT_EQ(io_.ops.size(), 1u);
  EXPECT_TRUE(io_.ops.front().unlink);
  io_.CompleteAll();
  EXPECT_EQ(SegmentsOf(log_dir()), std::vector<uint64_t>{1});
  EXPECT_EQ(Recover().payloads(), std::vector<std::string>{"s"});
}

TEST_F(SnapshotTest, AFullDiskDuringASnapshotHoldsItAndDeletesNothing) {
  auto writer = OpenWriter();
  Append(*writer, {"a"});
  writer->Flush(0);
  io_.CompleteAll();
  bool acked = false;
  writer->BeginSnapshot();
  Append(*writer, {"s"});
  writer->EndSnapshot();
  writer->WhenDurable([&](absl::Status s) { acked = s.ok(); });
  writer->Flush(0);
  ASSERT_EQ(io_.ops.size(), 1u);
  io_.CompleteOne(-ENOSPC);
  EXPECT_EQ(writer->error().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(acked);
  writer->Append(kUser, Bytes("later"));
  writer->Flush(500'000'000);
  EXPECT_TRUE(io_.ops.empty());
  EXPECT_TRUE(fs::exists(SegmentPath(0)));
  EXPECT_EQ(io_.unlinks, 0);
  writer->Flush(1'000'000'000);  // the retry
  io_.CompleteAll();
  EXPECT_TRUE(acked);
  EXPECT_TRUE(writer->error().ok());
  EXPECT_FALSE(fs::exists(SegmentPath(0)));
  EXPECT_EQ(Recover().payloads(), (std::vector<std::string>{"s", "later"}));
}

TEST_F(SnapshotTest, AFailedDeletionIsReportedAndRetriedByTheNextCompaction) {
  auto writer = OpenWriter();
  Append(*writer, {"a"});
  writer->Flush(0);
  io_.CompleteAll();
  writer->BeginSnapshot();
  writer->EndSnapshot();
  writer->Flush(0);
  while (!io_.ops.empty() && !io_.ops.front().unlink) io_.CompleteOne();
  ASSERT_FALSE(io_.ops.empty());
  io_.CompleteOne(-EACCES);
  io_.CompleteAll();
  EXPECT_FALSE(writer->failed());
  EXPECT_EQ(writer->last_compaction_error().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(writer->last_compaction_error().message().find(SegmentFileName(0)), std::string::npos);
  EXPECT_TRUE(fs::exists(SegmentPath(0)));
  EXPECT_EQ(writer->segments_deleted(), 0u);

  Append(*writer, {"b"});
  writer->BeginSnapshot();
  Append(*writer, {"s"});
  writer->EndSnapshot();
  writer->Flush(0);
  io_.CompleteAll();
  EXPECT_TRUE(writer->last_compaction_error().ok());
  EXPECT_EQ(writer->segments_deleted(), 2u);
  EXPECT_EQ(SegmentsOf(log_dir()), std::vector<uint64_t>{4});
}

TEST_F(SnapshotTest, AccountingDrivesTheCompactionPolicy) {
  auto writer = OpenWriter();
  const std::string record(91, 'x');  // 100 bytes framed
  for (int i = 0; i < 10; ++i) writer->Append(kUser, Bytes(record));
  EXPECT_EQ(writer->bytes_since_snapshot(), 1000u);
  EXPECT_EQ(writer->last_snapshot_bytes(), 0u);
  EXPECT_EQ(writer->live_segment_bytes(), kSegmentHeaderSize + 1000);
  EXPECT_TRUE(writer->CompactionDue(999));
  EXPECT_FALSE(writer->CompactionDue(1000));

  writer->BeginSnapshot();
  EXPECT_FALSE(writer->CompactionDue(0)) << "due while a snapshot is being written";
  for (int i = 0; i < 3; ++i) writer->Append(kUser, Bytes(record));
  writer->EndSnapshot();
  const uint64_t snapshot = FramedSize(0) + 300 + FramedSize(8);
  EXPECT_EQ(writer->last_snapshot_bytes(), snapshot);
  EXPECT_EQ(writer->bytes_since_snapshot(), snapshot);
  writer->Flush(0);
  io_.CompleteAll();
  EXPECT_EQ(writer->live_segment_bytes(), kSegmentHeaderSize + snapshot);
  // Twice the snapshot is the floor, whatever the threshold.
  for (int i = 0; i < 3; ++i) writer->Append(kUser, Bytes(record));
  EXPECT_FALSE(writer->CompactionDue(0));
  for (int i = 0; i < 4; ++i) writer->Append(kUser, Bytes(record));
  EXPECT_TRUE(writer->CompactionDue(0));
  EXPECT_FALSE(writer->CompactionDue(10000));

  // A writer reopened after recovery carries the accounting over.
  writer->Flush(0);
  io_.CompleteAll();
  writer.reset();
  Recovered r = Recover();
  EXPECT_EQ(r.report.snapshot_bytes, snapshot);
  EXPECT_EQ(r.report.bytes, snapshot + 700);
  auto reopened = LogWriter::Open({.directory = log_dir(),
                                   .bytes_since_snapshot = r.report.bytes,
                                   .last_snapshot_bytes = r.report.snapshot_bytes},
                                  r.report.next_sequence, io_);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_TRUE((*reopened)->CompactionDue(0));
  EXPECT_EQ((*reopened)->live_segment_bytes(),
            kSegmentHeaderSize + snapshot + 700 + kSegmentHeaderSize);
}

TEST_F(SnapshotTest, AWriterDestroyedBeforeDeletingLeavesTheOldSegmentsToRecovery) {
  auto writer = OpenWriter();
  Append(*writer, {"old-1", "old-2"});
  writer->Flush(0);
  io_.CompleteAll();
  writer->BeginSnapshot();
  Append(*writer, {"s"});
  writer->EndSnapshot();
  writer->Flush(0);
  io_.CompleteOne();  // the snapshot's write lands; the writer goes before the sync
  writer.reset();
  io_.CompleteAll();  // completions of a destroyed writer do nothing
  EXPECT_EQ(io_.unlinks, 0);
  EXPECT_EQ(SegmentsOf(log_dir()), (std::vector<uint64_t>{0, 2}));

  Recovered r = Recover();
  EXPECT_EQ(r.payloads(), std::vector<std::string>{"s"});
  EXPECT_EQ(r.report.segments_skipped, 1u);
  EXPECT_EQ(r.report.deleted, std::vector<std::string>{SegmentPath(0)});
  EXPECT_EQ(SegmentsOf(log_dir()), std::vector<uint64_t>{2});
}

TEST_F(SnapshotTest, AWriterDestroyedWithDeletionsInFlightLeavesARecoverableLog) {
  auto writer = OpenWriter(true, /*segment_bytes=*/60);
  Append(*writer, {"old-1", "old-2", "old-3"});
  for (int i = 0; i < 3; ++i) {
    writer->Flush(0);
    io_.CompleteAll();
  }
  const size_t old_segments = SegmentsOf(log_dir()).size();
  ASSERT_GE(old_segments, 2u);
  writer->BeginSnapshot();
  Append(*writer, {"s"});
  writer->EndSnapshot();
  writer->Flush(0);
  while (!io_.ops.empty() && !io_.ops.front().unlink) io_.CompleteOne();
  ASSERT_FALSE(io_.ops.empty());
  io_.CompleteOne();  // one old segment goes; then the writer does
  writer.reset();
  io_.CompleteAll();  // the other unlinks land, nothing syncs the directory
  Recovered r = Recover();
  EXPECT_EQ(r.payloads(), std::vector<std::string>{"s"});
  EXPECT_EQ(SegmentsOf(log_dir()), std::vector<uint64_t>{r.report.snapshot_sequence});
}

TEST_F(SnapshotTest, ACrashMidSnapshotThenARestartKeepsEveryAcknowledgedRecord) {
  // First life: a snapshot, records, then a second snapshot cut short.
  {
    auto writer = OpenWriter();
    Append(*writer, {"x"});
    writer->BeginSnapshot();
    Append(*writer, {"state-x"});
    writer->EndSnapshot();
    Append(*writer, {"y"});
    writer->Flush(0);
    io_.CompleteAll();
    writer->BeginSnapshot();
    Append(*writer, {"state-x", "state-y"});
    writer->Flush(0);
    io_.CompleteAll();  // BEGIN and part of the state are on disk: then the crash
  }
  Recovered first = Recover();
  EXPECT_EQ(first.payloads(), (std::vector<std::string>{"state-x", "y"}));
  EXPECT_TRUE(first.report.dropped_incomplete_snapshot);
  // Second life: more records, then a crash without any snapshot.
  {
    auto writer = OpenWriter(true, 1 << 20, first.report.next_sequence);
    Append(*writer, {"z"});
    writer->Flush(0);
    io_.CompleteAll();
  }
  // The dropped snapshot's records never come back, nor is "z" lost.
  Recovered second = Recover();
  EXPECT_EQ(second.payloads(), (std::vector<std::string>{"state-x", "y", "z"}));
  EXPECT_FALSE(second.report.dropped_incomplete_snapshot);
  EXPECT_GT(second.records.back().first, first.records.back().first);
}

TEST_F(SnapshotTest, ASnapshotBiggerThanASegmentSpansSegments) {
  auto writer = OpenWriter(true, /*segment_bytes=*/100);
  Append(*writer, {"old"});
  writer->Flush(0);
  io_.CompleteAll();
  writer->BeginSnapshot();
  std::vector<std::string> state;
  for (int i = 0; i < 20; ++i) {
    state.push_back("state-" + std::to_string(i) + std::string(20, '.'));
    writer->Append(kUser, Bytes(state.back()));
    writer->Flush(0);  // batches fill segments mid-snapshot
    io_.CompleteAll();
  }
  writer->EndSnapshot();
  writer->Append(kUser, Bytes("after"));
  writer->Flush(0);
  io_.CompleteAll();
  EXPECT_GT(SegmentsOf(log_dir()).size(), 3u);
  EXPECT_EQ(SegmentsOf(log_dir()).front(), 1u) << "segment 0 was deleted";
  state.push_back("after");
  Recovered r = Recover();
  EXPECT_EQ(r.payloads(), state);
  EXPECT_EQ(r.report.snapshot_sequence, 1u);
}

// ---- Recovery over hand-made logs ------------------------------------------

class SnapshotRecoveryTest : public SnapshotTest {
 protected:
  // "B" and "E" are the markers (END names `begin`), anything else a user
  // record. Returns the path.
  std::string WriteSegment(uint64_t first, const std::vector<std::string>& records,
                           uint64_t begin = 0) {
    std::string file;
    AppendSegmentHeader({.shard = 0, .first_sequence = first}, file);
    for (const std::string& r : records) {
      if (r == "B") {
        AppendRecord(kRecordSnapshotBegin, {}, file);
      } else if (r == "E") {
        std::string payload;
        for (int i = 0; i < 8; ++i) payload.push_back(static_cast<char>(begin >> (8 * i)));
        AppendRecord(kRecordSnapshotEnd, Bytes(payload), file);
      } else {
        AppendRecord(kUser, Bytes(r), file);
      }
    }
    fs::create_directories(log_dir());
    std::ofstream(SegmentPath(first), std::ios::binary) << file;
    return SegmentPath(first);
  }
};

TEST_F(SnapshotRecoveryTest, ReplayStartsAtTheNewestCompleteSnapshot) {
  WriteSegment(0, {"u1", "u2"});
  WriteSegment(2, {"B", "s1", "E", "u3"}, 2);
  WriteSegment(6, {"B", "s2", "E", "u4"}, 6);
  WriteSegment(10, {"u5"});
  Recovered r = Recover();
  EXPECT_EQ(r.records,
            (std::vector<std::pair<uint64_t, std::string>>{{7, "s2"}, {9, "u4"}, {10, "u5"}}));
  EXPECT_TRUE(r.report.used_snapshot);
  EXPECT_EQ(r.report.snapshot_sequence, 6u);
  EXPECT_EQ(r.report.snapshot_bytes, FramedSize(0) + FramedSize(2) + FramedSize(8));
  EXPECT_EQ(r.report.segments, 2u);
  EXPECT_EQ(r.report.segments_skipped, 2u);
  EXPECT_EQ(r.report.records, 3u);
  EXPECT_EQ(r.report.next_sequence, 11u);
  EXPECT_EQ(r.report.deleted, (std::vector<std::string>{SegmentPath(0), SegmentPath(2)}));
  EXPECT_EQ(SegmentsOf(log_dir()), (std::vector<uint64_t>{6, 10}));
  // Again: same records, nothing more to delete.
  Recovered again = Recover();
  EXPECT_EQ(again.records, r.records);
  EXPECT_TRUE(again.report.deleted.empty());
}

TEST_F(SnapshotRecoveryTest, AnIncompleteSnapshotIsDroppedAndReplayFallsBack) {
  WriteSegment(0, {"u1"});
  WriteSegment(1, {"B", "s1", "E", "u2"}, 1);
  WriteSegment(5, {"B", "s2", "s3"}, 5);  // the broker died writing it
  WriteSegment(8, {"s4"});                // ... after it filled a segment
  Recovered r = Recover();
  EXPECT_EQ(r.payloads(), (std::vector<std::string>{"s1", "u2"}));
  EXPECT_EQ(r.report.snapshot_sequence, 1u);
  EXPECT_TRUE(r.report.dropped_incomplete_snapshot);
  EXPECT_EQ(r.report.incomplete_snapshot_sequence, 5u);
  EXPECT_EQ(r.report.next_sequence, 9u) << "the dropped sequence numbers are not reused";
  EXPECT_EQ(r.report.deleted,
            (std::vector<std::string>{SegmentPath(8), SegmentPath(5), SegmentPath(0)}));
  EXPECT_EQ(SegmentsOf(log_dir()), std::vector<uint64_t>{1});
}

TEST_F(SnapshotRecoveryTest, AnIncompleteFirstSnapshotFallsBackToTheStart) {
  WriteSegment(0, {"u1", "u2"});
  const std::string torn = WriteSegment(2, {"B", "s1", "s2"}, 2);
  const std::string contents = ReadFile(torn);
  std::ofstream(torn, std::ios::binary | std::ios::trunc)
      << contents.substr(0, contents.size() - 1);
  Recovered r = Recover();
  EXPECT_EQ(r.payloads(), (std::vector<std::string>{"u1", "u2"}));
  EXPECT_FALSE(r.report.used_snapshot);
  EXPECT_TRUE(r.report.dropped_incomplete_snapshot);
  EXPECT_TRUE(r.report.truncated_file.empty()) << "the torn snapshot is deleted, not cut";
  EXPECT_EQ(SegmentsOf(log_dir()), std::vector<uint64_t>{0});
  EXPECT_GE(r.report.next_sequence, 4u);
}

TEST_F(SnapshotRecoveryTest, AnEndNamingAnotherSnapshotDoesNotCompleteIt) {
  WriteSegment(0, {"u1"});
  WriteSegment(1, {"B", "s1", "E"}, /*begin=*/0);
  Recovered r = Recover();
  EXPECT_EQ(r.payloads(), std::vector<std::string>{"u1"});
  EXPECT_TRUE(r.report.dropped_incomplete_snapshot);
}

TEST_F(SnapshotRecoveryTest, DamageInsideTheSnapshotRefusesAndDeletesNothing) {
  WriteSegment(0, {"u1"});
  const std::string path = WriteSegment(1, {"B", "s1", "s2", "E", "u2"}, 1);
  std::string contents = ReadFile(path);
  contents[kSegmentHeaderSize + FramedSize(0) + kRecordHeaderSize + 2] ^= 0x20;  // in "s1"
  std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
  auto refused =
      RecoverSegments(log_dir(), {}, [](const Record&, uint64_t) { return absl::OkStatus(); });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(SegmentsOf(log_dir()), (std::vector<uint64_t>{0, 1}));
  std::vector<std::string> salvaged;
  auto report = RecoverSegments(log_dir(), {.salvage = true}, [&](const Record& r, uint64_t) {
    salvaged.emplace_back(r.payload.begin(), r.payload.end());
    return absl::OkStatus();
  });
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(salvaged, (std::vector<std::string>{"s2", "u2"}));
  EXPECT_EQ(report->salvaged.size(), 1u);
}

TEST_F(SnapshotRecoveryTest, OnlyTheFirstRecordOfOldSegmentsIsRead) {
  // An old segment whose body is garbage past its first record: recovery
  // must not read it (it would call it damage).
  const std::string old = WriteSegment(0, {"u1", "u2"});
  std::string contents = ReadFile(old);
  contents.back() ^= 0x55;
  contents += std::string(100, '\xff');
  std::ofstream(old, std::ios::binary | std::ios::trunc) << contents;
  WriteSegment(2, {"B", "s", "E"}, 2);
  Recovered r = Recover();
  EXPECT_EQ(r.payloads(), std::vector<std::string>{"s"});
  EXPECT_EQ(r.report.deleted, std::vector<std::string>{old});
}

// ---- BlockingFileIo ----------------------------------------------------------

TEST_F(SnapshotTest, BlockingFileIoCompletesInsideTheCall) {
  fs::create_directories(log_dir());
  const std::string path = log_dir() + "/f";
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  const int dir_fd = ::open(log_dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_GE(dir_fd, 0);
  BlockingFileIo io;
  std::vector<int> results;
  const std::string text = "hello";
  io.Write(fd, 3, Bytes(text), [&](int r) { results.push_back(r); });
  io.Sync(fd, [&](int r) { results.push_back(r); });
  io.Sync(dir_fd, [&](int r) { results.push_back(r); });
  io.Unlink(dir_fd, "missing", [&](int r) { results.push_back(r); });
  io.Write(-1, 0, Bytes(text), [&](int r) { results.push_back(r); });
  EXPECT_EQ(results, (std::vector<int>{5, 0, 0, -ENOENT, -EBADF}));
  EXPECT_EQ(ReadFile(path), std::string(3, '\0') + "hello");
  io.Unlink(dir_fd, "f", [&](int r) { results.push_back(r); });
  EXPECT_EQ(results.back(), 0);
  EXPECT_FALSE(fs::exists(path));
  ::close(fd);
  ::close(dir_fd);
}

TEST_F(SnapshotTest, TheWriterWorksWithCompletionsFromInsideTheCall) {
  for (bool sync : {true, false}) {
    SCOPED_TRACE(sync ? "sync" : "async");
    fs::remove_all(log_dir());
    BlockingFileIo io;
    auto writer = OpenWriter(sync, /*segment_bytes=*/150, 0, &io);
    int acked = 0;
    std::vector<std::string> live;
    for (int round = 0; round < 5; ++round) {
      for (int i = 0; i < 12; ++i) {
        live.push_back(absl::StrFormat("r%d-%d", round, i));
        writer->Append(kUser, Bytes(live.back()));
        // A waiter appending and flushing from inside a completion.
        writer->WhenDurable([&, round, i](absl::Status s) {
          acked += s.ok();
          if (i == 5) {
            writer->Append(kUser, Bytes("nested"));
            writer->Flush(0);
          }
        });
        if (i % 2 == 0) writer->Flush(0);
      }
      writer->Flush(0);
      EXPECT_EQ(writer->pending_bytes(), 0u);
      EXPECT_EQ(writer->durable_sequence(), writer->next_sequence());
      // Compact: the state is the last round's records.
      const std::vector<std::string> state(live.end() - 12, live.end());
      writer->BeginSnapshot();
      for (const std::string& s : state) writer->Append(kUser, Bytes(s));
      writer->EndSnapshot();
      writer->Flush(0);
      EXPECT_FALSE(writer->compaction_pending());
      EXPECT_TRUE(writer->last_compaction_error().ok());
      live = state;
    }
    EXPECT_EQ(acked, 60);
    EXPECT_GT(writer->segments_deleted(), 5u);
    EXPECT_EQ(Recover().payloads(), live);
    EXPECT_EQ(SegmentsOf(log_dir()).front(), Recover().report.snapshot_sequence);
    writer.reset();
  }
}

}  // namespace
}  // namespace shardmq::store
