#include "store/segment_recovery.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace shardmq::store {
namespace {

namespace fs = std::filesystem;

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

class SegmentRecoveryTest : public ::testing::Test {
 protected:
  // Writes a segment starting at `first` holding one record per payload;
  // returns its path.
  fs::path WriteSegment(uint64_t first, const std::vector<std::string>& payloads) {
    std::string file;
    AppendSegmentHeader({.shard = 0, .first_sequence = first}, file);
    for (const std::string& p : payloads) AppendRecord(0x17, Bytes(p), file);
    fs::path path = fs::path(dir_) / SegmentFileName(first);
    std::ofstream(path, std::ios::binary) << file;
    return path;
  }

  struct Recovered {
    absl::StatusOr<RecoveryReport> report;
    std::vector<std::pair<uint64_t, std::string>> records;
  };
  Recovered Recover(bool salvage = false) {
    Recovered out;
    out.report =
        RecoverSegments(dir_, {.salvage = salvage}, [&](const Record& r, uint64_t sequence) {
          out.records.emplace_back(sequence, std::string(r.payload.begin(), r.payload.end()));
          return absl::OkStatus();
        });
    return out;
  }

  testing::TempDir temp_{"shardmq-store"};
  const std::string& dir_ = temp_.path();
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteFile(const fs::path& path, const std::string& contents) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
}

TEST_F(SegmentRecoveryTest, AMissingOrEmptyDirectoryIsAnEmptyLog) {
  auto missing = RecoverSegments(dir_ + "/nothing-here", {},
                                 [](const Record&, uint64_t) { return absl::OkStatus(); });
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ(missing->records, 0u);
  Recovered empty = Recover();
  ASSERT_TRUE(empty.report.ok());
  EXPECT_EQ(empty.report->segments, 0u);
  EXPECT_EQ(empty.report->next_sequence, 0u);
}

TEST_F(SegmentRecoveryTest, SegmentsAreReadInSequenceOrderWithSequenceNumbers) {
  WriteSegment(3, {"d", "e"});
  WriteSegment(0, {"a", "b", "c"});
  WriteFile(fs::path(dir_) / "notes.txt", "not a segment");
  Recovered r = Recover();
  ASSERT_TRUE(r.report.ok()) << r.report.status();
  EXPECT_EQ(r.report->segments, 2u);
  EXPECT_EQ(r.report->records, 5u);
  EXPECT_EQ(r.report->next_sequence, 5u);
  EXPECT_TRUE(r.report->truncated_file.empty());
  std::vector<std::pair<uint64_t, std::string>> expected = {
      {0, "a"}, {1, "b"}, {2, "c"}, {3, "d"}, {4, "e"}};
  EXPECT_EQ(r.records, expected);
}

TEST_F(SegmentRecoveryTest, ATornTailOfTheNewestSegmentIsCutOffTheFile) {
  WriteSegment(0, {"a"});
  fs::path newest = WriteSegment(1, {"b", "c"});
  std::string contents = ReadFile(newest);
  const size_t whole = contents.size();
  WriteFile(newest, contents.substr(0, whole - 2));  // "c" half written
  Recovered r = Recover();
  ASSERT_TRUE(r.report.ok()) << r.report.status();
  EXPECT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.report->next_sequence, 2u);
  EXPECT_EQ(r.report->truncated_file, newest.string());
  EXPECT_EQ(r.report->truncated_bytes, FramedSize(1) - 2);
  EXPECT_EQ(fs::file_size(newest), whole - FramedSize(1));
  // Recovering again finds a clean log: the cut was made on disk.
  Recovered again = Recover();
  ASSERT_TRUE(again.report.ok());
  EXPECT_TRUE(again.report->truncated_file.empty());
  EXPECT_EQ(again.records.size(), 2u);
}

TEST_F(SegmentRecoveryTest, ANewestSegmentWithoutAWholeHeaderIsDropped) {
  WriteSegment(0, {"a"});
  fs::path partial = fs::path(dir_) / SegmentFileName(1);
  WriteFile(partial, "SHMQ");
  Recovered r = Recover();
  ASSERT_TRUE(r.report.ok()) << r.report.status();
  EXPECT_EQ(r.records.size(), 1u);
  EXPECT_FALSE(fs::exists(partial));
}

TEST_F(SegmentRecoveryTest, DamageInTheMiddleStopsStartUpNamingTheFileAndOffset) {
  fs::path path = WriteSegment(0, {"first", "second", "third"});
  std::string contents = ReadFile(path);
  const size_t second = kSegmentHeaderSize + FramedSize(5);
  contents[second + kRecordHeaderSize + 2] ^= 0x20;  // inside "second"
  WriteFile(path, contents);
  Recovered r = Recover();
  ASSERT_FALSE(r.report.ok());
  EXPECT_EQ(r.report.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(r.report.status().message(),
            "damaged log: " + path.string() + ": offset " + std::to_string(second) +
                ": checksum mismatch (start with --salvage to keep the readable records)");
  // Nothing was cut: the operator decides.
  EXPECT_EQ(ReadFile(path), contents);

  Recovered salvaged = Recover(/*salvage=*/true);
  ASSERT_TRUE(salvaged.report.ok()) << salvaged.report.status();
  ASSERT_EQ(salvaged.records.size(), 2u);
  EXPECT_EQ(salvaged.records[0].second, "first");
  EXPECT_EQ(salvaged.records[1].second, "third");
  ASSERT_EQ(salvaged.report->salvaged.size(), 1u);
  EXPECT_NE(salvaged.report->salvaged[0].find("offset " + std::to_string(second)),
            std::string::npos);
}

TEST_F(SegmentRecoveryTest, ATornTailBeforeANewerSegmentIsDamage) {
  fs::path older = WriteSegment(0, {"a", "b"});
  WriteSegment(2, {"c"});
  std::string contents = ReadFile(older);
  WriteFile(older, contents.substr(0, contents.size() - 1));
  Recovered r = Recover();
  ASSERT_FALSE(r.report.ok());
  EXPECT_NE(r.report.status().message().find(older.string()), std::string::npos);
  Recovered salvaged = Recover(/*salvage=*/true);
  ASSERT_TRUE(salvaged.report.ok());
  EXPECT_EQ(salvaged.records.size(), 2u);  // "a" and "c"
}

TEST_F(SegmentRecoveryTest, AForeignFileWithASegmentNameIsRefused) {
  WriteFile(fs::path(dir_) / SegmentFileName(0), std::string(64, 'x'));
  WriteSegment(1, {"b"});
  Recovered r = Recover();
  ASSERT_FALSE(r.report.ok());
  EXPECT_NE(r.report.status().message().find("not a shardmq log segment"), std::string::npos);
}

TEST_F(SegmentRecoveryTest, AnErrorFromTheVisitorStopsRecovery) {
  WriteSegment(0, {"a", "b"});
  int calls = 0;
  auto report = RecoverSegments(dir_, {}, [&](const Record&, uint64_t) {
    ++calls;
    return absl::InvalidArgumentError("unknown record type 7");
  });
  EXPECT_EQ(report.status().message(), "unknown record type 7");
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace shardmq::store
