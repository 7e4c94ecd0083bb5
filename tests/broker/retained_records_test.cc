// The retained-message log records and their recovery across shard
// directories (broker/retained_records.h, broker/retained_recovery.h).
#include "broker/retained_records.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>

#include "broker/retained_recovery.h"
#include "store/async_file_io.h"
#include "store/log_writer.h"
#include "temp_dir.h"

namespace shardmq::broker {
namespace {

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string Str(absl::Span<const uint8_t> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

TEST(RetainedRecords, SetRoundTripsWithPropertiesAndExpiry) {
  mqtt::Properties properties;
  properties.payload_format_indicator = 1;
  properties.content_type = "text/plain";
  properties.response_topic = "reply/here";
  const std::string correlation = "\x01\x02\x00\x03";
  properties.correlation_data = Bytes(correlation);
  properties.user_properties.emplace_back("k1", "v1");
  properties.user_properties.emplace_back("k2", "v2");
  properties.user_properties.emplace_back("k1", "again");
  std::string out;
  EncodeRetainSet(1234567, "a/b", 1, int64_t{99'000'000'000}, &properties, Bytes("hello"), out);

  absl::StatusOr<RetainedRecord> record = DecodeRetained(kRecordRetainSet, Bytes(out));
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_FALSE(record->clear);
  EXPECT_EQ(record->stamp_ns, 1234567);
  EXPECT_EQ(record->topic, "a/b");
  EXPECT_EQ(record->qos, 1);
  EXPECT_EQ(record->expires_at_ns, int64_t{99'000'000'000});
  EXPECT_EQ(Str(record->payload), "hello");
  absl::StatusOr<mqtt::Properties> decoded = DecodeRetainedProperties(*record);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, properties);
}

TEST(RetainedRecords, SetWithoutPropertiesAndClearRoundTrip) {
  std::string set;
  EncodeRetainSet(5, "t", 0, std::nullopt, nullptr, Bytes(std::string(1000, 'x')), set);
  absl::StatusOr<RetainedRecord> record = DecodeRetained(kRecordRetainSet, Bytes(set));
  ASSERT_TRUE(record.ok());
  EXPECT_FALSE(record->expires_at_ns.has_value());
  EXPECT_TRUE(record->properties.empty());
  EXPECT_EQ(record->payload.size(), 1000u);

  std::string clear;
  EncodeRetainClear(6, "some/topic", clear);
  record = DecodeRetained(kRecordRetainClear, Bytes(clear));
  ASSERT_TRUE(record.ok());
  EXPECT_TRUE(record->clear);
  EXPECT_EQ(record->topic, "some/topic");
  EXPECT_EQ(record->stamp_ns, 6);
}

TEST(RetainedRecords, TruncatedSetIsAnError) {
  std::string set;
  EncodeRetainSet(5, "topic", 0, std::nullopt, nullptr, Bytes("p"), set);
  for (size_t cut : {3, 9, 12, 15}) {
    EXPECT_FALSE(DecodeRetained(kRecordRetainSet, Bytes(set.substr(0, cut))).ok()) << cut;
  }
}

// Feeds the merge decoded copies of freshly encoded records.
void AddSet(RetainedMerge& merge, int64_t stamp, uint64_t sequence, const std::string& topic,
            const std::string& payload, std::optional<int64_t> expiry = std::nullopt) {
  std::string bytes;
  EncodeRetainSet(stamp, topic, 0, expiry, nullptr, Bytes(payload), bytes);
  merge.Add(*DecodeRetained(kRecordRetainSet, Bytes(bytes)), sequence);
}
void AddClear(RetainedMerge& merge, int64_t stamp, uint64_t sequence, const std::string& topic) {
  std::string bytes;
  EncodeRetainClear(stamp, topic, bytes);
  merge.Add(*DecodeRetained(kRecordRetainClear, Bytes(bytes)), sequence);
}

TEST(RetainedMerge, TheNewestStampWinsWhateverOrderRecordsComeIn) {
  RetainedMerge merge;
  // Shard 1's directory read first, holding the newer value of "a".
  AddSet(merge, 200, 0, "a", "new");
  AddSet(merge, 100, 7, "a", "old");  // shard 0, older stamp, higher sequence
  AddSet(merge, 50, 0, "b", "kept");
  AddSet(merge, 60, 1, "c", "gone");
  AddClear(merge, 70, 2, "c");
  AddClear(merge, 10, 3, "b");  // an older clear does not remove a newer set
  EXPECT_EQ(merge.newest_stamp(), 200);
  std::vector<RecoveredRetained> out = merge.Take(1000);
  std::map<std::string, std::string> got;
  for (const RecoveredRetained& r : out) got[r.topic] = r.payload;
  EXPECT_EQ(got, (std::map<std::string, std::string>{{"a", "new"}, {"b", "kept"}}));
}

TEST(RetainedMerge, ExpiredMessagesAreDropped) {
  RetainedMerge merge;
  AddSet(merge, 1, 0, "past", "x", int64_t{500});
  AddSet(merge, 2, 1, "future", "y", int64_t{5000});
  size_t expired = 0;
  std::vector<RecoveredRetained> out = merge.Take(1000, &expired);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].topic, "future");
  EXPECT_EQ(expired, 1u);
}

// Blocking pwrite/fdatasync, completed at once: enough to write real logs.
class BlockingFileIo : public store::AsyncFileIo {
 public:
  void Write(int fd, uint64_t offset, absl::Span<const uint8_t> bytes, Done done) override {
    done(static_cast<int>(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset))));
  }
  void Sync(int fd, Done done) override { done(::fdatasync(fd)); }
  void Unlink(int dir_fd, std::string path, Done done) override {
    done(::unlinkat(dir_fd, path.c_str(), 0) == 0 ? 0 : -errno);
  }
};

TEST(RecoverStore, ReadsEveryShardDirectoryEvenWithFewerShardsNow) {
  const testing::TempDir temp("shardmq-retained");
  const std::string& dir = temp.path();
  BlockingFileIo io;
  auto write = [&](int shard, std::vector<std::pair<uint8_t, std::string>> records) {
    auto writer = store::LogWriter::Open(
        {.directory = dir + "/shard-" + std::to_string(shard), .shard = uint32_t(shard)}, 0, io);
    ASSERT_TRUE(writer.ok()) << writer.status();
    for (auto& [type, bytes] : records) (*writer)->Append(type, Bytes(bytes));
    (*writer)->Flush(0);
  };
  std::string a_old, a_new, b, c, c_clear;
  EncodeRetainSet(100, "a", 1, std::nullopt, nullptr, Bytes("old"), a_old);
  EncodeRetainSet(300, "a", 1, std::nullopt, nullptr, Bytes("new"), a_new);
  EncodeRetainSet(150, "b", 0, std::nullopt, nullptr, Bytes("bee"), b);
  EncodeRetainSet(160, "c", 0, std::nullopt, nullptr, Bytes("sea"), c);
  EncodeRetainClear(400, "c", c_clear);
  write(0, {{kRecordRetainSet, a_old}, {kRecordRetainSet, b}});
  write(3, {{kRecordRetainSet, c}, {kRecordRetainSet, a_new}, {kRecordRetainClear, c_clear}});

  // Two shards now: shard-3 is still read, and its records still count.
  absl::StatusOr<StoreRecovery> recovered = RecoverStore(dir, 2, 1000);
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(recovered->directories, 2u);
  EXPECT_EQ(recovered->records, 5u);
  EXPECT_EQ(recovered->newest_stamp_ns, 400);
  EXPECT_EQ(recovered->next_sequence, (std::vector<uint64_t>{2, 0}));
  std::map<std::string, std::string> got;
  for (const RecoveredRetained& r : recovered->retained) got[r.topic] = r.payload;
  EXPECT_EQ(got, (std::map<std::string, std::string>{{"a", "new"}, {"b", "bee"}}));

  // Unknown record types are refused with the directory and offset.
  write(1, {{0x7f, "?"}});
  recovered = RecoverStore(dir, 2, 1000);
  ASSERT_FALSE(recovered.ok());
  EXPECT_NE(recovered.status().message().find("shard-1: offset 24: unknown record type 127"),
            std::string::npos)
      << recovered.status();
}

}  // namespace
}  // namespace shardmq::broker
