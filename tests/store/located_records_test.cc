// LogWriter's located records and kept segments, and recovery's
// keep_segments_from: what --max-memory builds on (broker/spill.h). A
// message kept only in the log must be found again where the writer said it
// went, whatever rotation and snapshots did around it, and the segment it is
// in must outlive compactions until the owner lets it go.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "manual_file_io.h"
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

class LocatedRecordsTest : public ::testing::Test {
 protected:
  std::string log_dir() const { return temp_.path() + "/shard-0"; }

  std::unique_ptr<LogWriter> OpenWriter(bool sync, uint64_t segment_bytes) {
    auto writer = LogWriter::Open(
        {.directory = log_dir(), .shard = 0, .segment_bytes = segment_bytes, .sync = sync}, 0, io_);
    EXPECT_TRUE(writer.ok()) << writer.status();
    if (!writer.ok()) return nullptr;
    (*writer)->OnLocated([this](uint64_t sequence, uint64_t segment, uint64_t offset) {
      EXPECT_FALSE(where_.contains(sequence)) << "located twice: " << sequence;
      where_[sequence] = {segment, offset};
    });
    return *std::move(writer);
  }

  // The payload of the one record at `offset` of segment `segment`.
  std::string RecordAt(uint64_t segment, uint64_t offset) {
    std::ifstream in(log_dir() + "/" + SegmentFileName(segment), std::ios::binary);
    std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (offset >= contents.size()) return "<past the end>";
    std::string found = "<no record>";
    bool first = true;
    ScanRecords(Bytes(contents).subspan(offset), offset, [&](const Record& r) {
      if (first) found.assign(r.payload.begin(), r.payload.end());
      first = false;
    });
    return found;
  }

  void Drain(LogWriter& writer) {
    for (int guard = 0; guard < 1000 && !io_.ops.empty(); ++guard) {
      io_.CompleteOne();
      writer.Flush(0);
    }
  }

  testing::TempDir temp_{"shardmq-located"};
  ManualFileIo io_;
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> where_;
};

TEST_F(LocatedRecordsTest, EveryLocatedRecordIsFoundWhereTheWriterSaid) {
  for (bool sync : {true, false}) {
    SCOPED_TRACE(sync ? "sync" : "async");
    fs::remove_all(log_dir());
    where_.clear();
    // Small segments, so records land in several; a snapshot in the middle
    // queues its records for a segment of their own.
    auto writer = OpenWriter(sync, 200);
    writer->KeepSegmentsFrom(0);  // the snapshot deletes nothing: all are read below
    std::map<uint64_t, std::string> located;
    for (int i = 0; i < 60; ++i) {
      const std::string payload = "record-" + std::to_string(i) + std::string(i % 7 * 5, '.');
      const bool locate = i % 3 != 1;
      if (i == 30) {
        writer->BeginSnapshot();
        const uint64_t s = writer->Append(kUser, Bytes("in-snapshot"), true);
        located[s] = "in-snapshot";
        writer->EndSnapshot();
      }
      const uint64_t sequence = writer->Append(kUser, Bytes(payload), locate);
      if (locate) located[sequence] = payload;
      if (i % 4 == 0) writer->Flush(0);  // some batches go while others build
      if (i % 9 == 0) io_.CompleteOne();
    }
    writer->Flush(0);
    Drain(*writer);
    ASSERT_EQ(where_.size(), located.size());
    std::set<uint64_t> segments;
    for (const auto& [sequence, payload] : located) {
      ASSERT_TRUE(where_.contains(sequence)) << sequence;
      const auto [segment, offset] = where_[sequence];
      segments.insert(segment);
      EXPECT_LE(segment, sequence) << "a segment is named by its first record";
      EXPECT_EQ(RecordAt(segment, offset), payload) << "sequence " << sequence;
    }
    EXPECT_GE(segments.size(), 3u) << "the records should have spread over segments";
    writer.reset();
  }
}

TEST_F(LocatedRecordsTest, KeptSegmentsOutliveCompactionUntilReleased) {
  auto writer = OpenWriter(true, 100);
  uint64_t pinned_sequence = 0;
  for (int i = 0; i < 20; ++i) {
    const uint64_t s = writer->Append(kUser, Bytes("old-" + std::to_string(i) + "-padding"), true);
    if (i == 5) pinned_sequence = s;
    writer->Flush(0);
    Drain(*writer);
  }
  const uint64_t pinned_segment = where_.at(pinned_sequence).first;
  ASSERT_GT(pinned_segment, 0u) << "the pinned record should not be in the first segment";
  writer->KeepSegmentsFrom(pinned_segment);
  writer->BeginSnapshot();
  writer->Append(kUser, Bytes("state"));
  writer->EndSnapshot();
  writer->Flush(0);
  Drain(*writer);
  // Older than the pinned segment: gone. From it on: kept, and readable.
  absl::StatusOr<std::vector<SegmentFile>> left = ListSegmentFiles(log_dir());
  ASSERT_TRUE(left.ok()) << left.status();
  for (const SegmentFile& s : *left) {
    EXPECT_GE(s.first_sequence, pinned_segment) << s.path << " should have been deleted";
  }
  EXPECT_TRUE(fs::exists(log_dir() + "/" + SegmentFileName(pinned_segment)));
  EXPECT_EQ(RecordAt(pinned_segment, where_.at(pinned_sequence).second), "old-5-padding");
  // Released: the next compaction takes the rest of the history.
  writer->KeepSegmentsFrom(UINT64_MAX);
  for (int i = 0; i < 3; ++i) writer->Append(kUser, Bytes("more-records-" + std::to_string(i)));
  const uint64_t second = writer->BeginSnapshot();
  writer->Append(kUser, Bytes("state-2"));
  writer->EndSnapshot();
  writer->Flush(0);
  Drain(*writer);
  left = ListSegmentFiles(log_dir());
  ASSERT_TRUE(left.ok()) << left.status();
  for (const SegmentFile& s : *left) EXPECT_GE(s.first_sequence, second);
}

TEST_F(LocatedRecordsTest, RecoveryReportsSegmentsAndKeepsWhatTheCallerStillReads) {
  auto writer = OpenWriter(true, 100);
  for (int i = 0; i < 12; ++i) {
    writer->Append(kUser, Bytes("history-" + std::to_string(i) + "-padding"), true);
    writer->Flush(0);
    Drain(*writer);
  }
  // Kept through the snapshot's own compaction, as the broker would.
  const uint64_t keep = where_.at(7).first;
  writer->KeepSegmentsFrom(keep);
  writer->BeginSnapshot();
  writer->Append(kUser, Bytes("state"));
  writer->EndSnapshot();
  writer->Flush(0);
  Drain(*writer);
  writer.reset();
  // Recovery reads only the snapshot; the older segment stays when asked...
  RecoveryOptions options;
  options.keep_segments_from = [keep] { return keep; };
  std::vector<std::pair<std::string, uint64_t>> seen;
  auto report = RecoverSegments(log_dir(), options, [&](const Record& r, uint64_t) {
    seen.emplace_back(std::string(r.payload.begin(), r.payload.end()), r.segment);
    return absl::OkStatus();
  });
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].first, "state");
  EXPECT_EQ(seen[0].second, report->snapshot_sequence) << "Record::segment names its segment";
  EXPECT_TRUE(fs::exists(log_dir() + "/" + SegmentFileName(keep)));
  EXPECT_EQ(RecordAt(keep, where_.at(7).second), "history-7-padding");
  // ... and goes when nothing is asked for.
  ASSERT_TRUE(RecoverSegments(log_dir(), {}, [](const Record&, uint64_t) {
                return absl::OkStatus();
              }).ok());
  EXPECT_FALSE(fs::exists(log_dir() + "/" + SegmentFileName(keep)));
}

}  // namespace
}  // namespace shardmq::store
