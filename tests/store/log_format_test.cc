#include "store/log_format.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace shardmq::store {
namespace {

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

struct Seen {
  uint8_t type;
  std::string payload;
  uint64_t offset;
};

ScanResult Scan(const std::string& log, std::vector<Seen>* seen = nullptr, uint64_t base = 0) {
  return ScanRecords(Bytes(log), base, [&](const Record& r) {
    if (seen != nullptr) {
      seen->push_back({r.type, std::string(r.payload.begin(), r.payload.end()), r.offset});
    }
  });
}

// Three records: "session", an empty one, "retained".
std::string ThreeRecords() {
  std::string log;
  AppendRecord(1, Bytes("session"), log);
  AppendRecord(2, {}, log);
  AppendRecord(3, Bytes("retained"), log);
  return log;
}

TEST(LogFormatTest, RecordsComeBackInOrderWithTheirOffsets) {
  const std::string log = ThreeRecords();
  EXPECT_EQ(log.size(), FramedSize(7) + FramedSize(0) + FramedSize(8));
  std::vector<Seen> seen;
  ScanResult result = Scan(log, &seen, 1000);
  EXPECT_EQ(result.end, ScanEnd::kClean);
  EXPECT_EQ(result.records, 3u);
  EXPECT_EQ(result.good_bytes, log.size());
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].type, 1);
  EXPECT_EQ(seen[0].payload, "session");
  EXPECT_EQ(seen[0].offset, 1000u);
  EXPECT_EQ(seen[1].type, 2);
  EXPECT_EQ(seen[1].payload, "");
  EXPECT_EQ(seen[1].offset, 1000u + FramedSize(7));
  EXPECT_EQ(seen[2].payload, "retained");
  EXPECT_EQ(Scan("").end, ScanEnd::kClean);
}

TEST(LogFormatTest, AWriteCutShortAnywhereIsATornTailKeepingWholeRecords) {
  const std::string log = ThreeRecords();
  const size_t two = FramedSize(7) + FramedSize(0);
  for (size_t cut = two + 1; cut < log.size(); ++cut) {
    std::vector<Seen> seen;
    ScanResult result = Scan(log.substr(0, cut), &seen);
    EXPECT_EQ(result.end, ScanEnd::kTornTail) << cut;
    EXPECT_EQ(result.good_bytes, two) << cut;
    EXPECT_EQ(result.bad_offset, two) << cut;
    EXPECT_EQ(seen.size(), 2u) << cut;
  }
  // A tail the file system zero-filled (space allocated, data never written).
  ScanResult zeros = Scan(log + std::string(4096, '\0'));
  EXPECT_EQ(zeros.end, ScanEnd::kTornTail);
  EXPECT_EQ(zeros.good_bytes, log.size());
  EXPECT_EQ(zeros.reason, "zero length");
}

TEST(LogFormatTest, AFlippedByteInTheLastRecordIsATornTail) {
  std::string log = ThreeRecords();
  log[log.size() - 2] ^= 0x40;
  ScanResult result = Scan(log);
  EXPECT_EQ(result.end, ScanEnd::kTornTail);
  EXPECT_EQ(result.records, 2u);
  EXPECT_EQ(result.reason, "checksum mismatch");
}

TEST(LogFormatTest, DamageBeforeGoodRecordsIsCorruptionNotATail) {
  const std::string clean = ThreeRecords();
  // Every byte of the first record, flipped in turn: the payload and type
  // fail the checksum, the header fails its own checks; the good records
  // after it make it damage in the middle either way.
  for (size_t at = 0; at < FramedSize(7); ++at) {
    std::string log = clean;
    log[at] ^= 0x01;
    std::vector<Seen> seen;
    ScanResult result = Scan(log, &seen, 24);
    EXPECT_EQ(result.end, ScanEnd::kCorrupt) << at;
    EXPECT_EQ(result.bad_offset, 24u) << at;
    EXPECT_EQ(result.good_bytes, 0u) << at;
    EXPECT_TRUE(seen.empty()) << at;
    EXPECT_FALSE(result.reason.empty()) << at;
  }
}

TEST(LogFormatTest, AGarbageLengthIsRefusedWithoutReadingPastTheEnd) {
  std::string log;
  AppendRecord(1, Bytes("x"), log);
  log[3] = static_cast<char>(0x7f);  // body length ~2 GiB
  ScanResult result = Scan(log);
  EXPECT_EQ(result.end, ScanEnd::kTornTail);
  EXPECT_EQ(result.reason, "length beyond the largest record");
}

TEST(LogFormatTest, SegmentHeadersRoundTripAndForeignFilesAreRefused) {
  std::string file;
  AppendSegmentHeader({.shard = 3, .first_sequence = 0x0102030405060708}, file);
  ASSERT_EQ(file.size(), kSegmentHeaderSize);
  auto header = ParseSegmentHeader(Bytes(file));
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->shard, 3u);
  EXPECT_EQ(header->first_sequence, 0x0102030405060708u);

  EXPECT_EQ(ParseSegmentHeader(Bytes(file.substr(0, 10))).status().message(),
            "segment header is 10 bytes, shorter than 24");
  std::string foreign = file;
  foreign[0] = 'X';
  EXPECT_EQ(ParseSegmentHeader(Bytes(foreign)).status().message(),
            "not a shardmq log segment (bad magic)");
  std::string newer = file;
  newer[8] = 2;
  EXPECT_EQ(ParseSegmentHeader(Bytes(newer)).status().message(),
            "log format version 2; this shardmq reads version 1");
}

}  // namespace
}  // namespace shardmq::store
