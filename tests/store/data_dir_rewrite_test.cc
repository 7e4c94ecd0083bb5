// RewriteDataDir / FinishInterruptedRewrite: a data directory rewritten into
// a new shard count, with a simulated crash before every filesystem step of
// the rewrite and of the finishing: what start-up then recovers is exactly
// the old state or exactly the new one.
#include "store/data_dir_rewrite.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "store/blocking_file_io.h"
#include "store/segment_recovery.h"
#include "temp_dir.h"

namespace shardmq::store {
namespace {

namespace fs = std::filesystem;

constexpr uint8_t kUser = 0x10;

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Shard directory name -> its records, in order; what start-up would load.
using State = std::map<std::string, std::vector<std::string>>;

class DataDirRewriteTest : public ::testing::Test {
 protected:
  // Shards 0, 1 and 3 (a directory from an earlier, larger configuration);
  // shard 1's log was compacted once.
  void WriteOldState() {
    auto write = [&](int shard, const std::vector<std::string>& records, bool snapshot) {
      auto writer = LogWriter::Open(
          {.directory = dir_ + "/shard-" + std::to_string(shard), .shard = uint32_t(shard)}, 0,
          io_);
      ASSERT_TRUE(writer.ok()) << writer.status();
      if (snapshot) {
        (*writer)->Append(kUser, Bytes("history"));
        (*writer)->BeginSnapshot();
      }
      for (const std::string& r : records) (*writer)->Append(kUser, Bytes(r));
      if (snapshot) (*writer)->EndSnapshot();
      (*writer)->Flush(0);
      ASSERT_EQ((*writer)->durable_sequence(), (*writer)->next_sequence());
    };
    write(0, {"a", "b"}, false);
    write(1, {"c"}, true);
    write(3, {"d"}, false);
    std::ofstream(dir_ + "/LOCK") << "1234\n";
  }
  const State kOld = {{"shard-0", {"a", "b"}}, {"shard-1", {"c"}}, {"shard-3", {"d"}}};
  const State kNew = {{"shard-0", {"a", "d"}}, {"shard-1", {"b"}}, {"shard-2", {"c"}}};

  absl::Status Fill(int shard, LogWriter& writer) {
    for (const std::string& r : kNew.at("shard-" + std::to_string(shard))) {
      writer.Append(kUser, Bytes(r));
    }
    return absl::OkStatus();
  }

  absl::Status Rewrite(int crash_before_step = -1) {
    return RewriteDataDir(dir_, 3,
                          [&](int shard, LogWriter& writer) { return Fill(shard, writer); },
                          {2, 4, 0, 1}, {.crash_before_step = crash_before_step});
  }

  State Load(uint64_t* min_sequence = nullptr) {
    State state;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir_)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("shard-", 0) != 0) continue;
      std::vector<std::string>& records = state[name];
      auto report = RecoverSegments(entry.path().string(), {}, [&](const Record& r, uint64_t seq) {
        records.emplace_back(r.payload.begin(), r.payload.end());
        if (min_sequence != nullptr) *min_sequence = std::min(*min_sequence, seq);
        return absl::OkStatus();
      });
      EXPECT_TRUE(report.ok()) << name << ": " << report.status();
    }
    return state;
  }

  testing::TempDir temp_{"shardmq-rewrite"};
  const std::string& dir_ = temp_.path();
  BlockingFileIo io_;
};

TEST_F(DataDirRewriteTest, TheStateMovesIntoTheNewShardDirectories) {
  WriteOldState();
  ASSERT_EQ(Load(), kOld);
  ASSERT_TRUE(Rewrite().ok());
  uint64_t min_sequence = UINT64_MAX;
  EXPECT_EQ(Load(&min_sequence), kNew);
  EXPECT_FALSE(fs::exists(dir_ + "/rewrite"));
  EXPECT_EQ(std::ifstream(dir_ + "/LOCK").rdbuf() != nullptr, true);
  EXPECT_TRUE(fs::exists(dir_ + "/LOCK")) << "the lock file is not the rewrite's";
  // Sequence numbers continue past every old log's (the largest given, 4;
  // the BEGIN takes 4, the first state record 5).
  EXPECT_EQ(min_sequence, 5u);
  // Each new log is one snapshot.
  auto report = RecoverSegments(dir_ + "/shard-0", {},
                                [](const Record&, uint64_t) { return absl::OkStatus(); });
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->used_snapshot);
  EXPECT_EQ(report->snapshot_sequence, 4u);
  auto note = FinishInterruptedRewrite(dir_);
  ASSERT_TRUE(note.ok());
  EXPECT_EQ(*note, "");
}

TEST_F(DataDirRewriteTest, ACrashBeforeAnyStepLeavesExactlyTheOldOrTheNewState) {
  int commit_step = -1;  // the first crash point that gives the new state
  int step = 0;
  for (;; ++step) {
    SCOPED_TRACE("rewrite crashed before step " + std::to_string(step));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    WriteOldState();
    const absl::Status rewritten = Rewrite(step);
    if (rewritten.ok()) break;  // past the last step
    ASSERT_EQ(rewritten.code(), absl::StatusCode::kAborted) << rewritten;
    ASSERT_LT(step, 100);
    // From the rename of COMPLETE on, the new state is the one: COMPLETE
    // stays until every new directory is in place.
    if (fs::exists(dir_ + "/rewrite/COMPLETE") && commit_step < 0) commit_step = step;
    const bool committed = commit_step >= 0;
    const bool interrupted = fs::exists(dir_ + "/rewrite");

    // Start-up: finishing may crash too, at any of its own steps.
    for (int finish_step = 0;; ++finish_step) {
      ASSERT_LT(finish_step, 100);
      auto note = FinishInterruptedRewrite(dir_, {.crash_before_step = finish_step});
      if (note.ok()) {
        EXPECT_EQ(note->empty(), !interrupted) << *note;
        break;
      }
      ASSERT_EQ(note.status().code(), absl::StatusCode::kAborted) << note.status();
    }
    auto note = FinishInterruptedRewrite(dir_);
    ASSERT_TRUE(note.ok()) << note.status();
    EXPECT_EQ(*note, "") << "finished twice";
    EXPECT_FALSE(fs::exists(dir_ + "/rewrite"));
    EXPECT_EQ(Load(), committed ? kNew : kOld);
    EXPECT_TRUE(fs::exists(dir_ + "/LOCK"));
  }
  EXPECT_GT(commit_step, 3) << "the commit comes after the new logs are written";
  EXPECT_GT(step, commit_step + 5) << "crash points after the commit were exercised";
  EXPECT_EQ(Load(), kNew);
}

TEST_F(DataDirRewriteTest, AnInterruptedRewriteIsRedoneFromScratch) {
  WriteOldState();
  ASSERT_EQ(Rewrite(/*crash_before_step=*/2).code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(fs::exists(dir_ + "/rewrite/shard-0"));
  // Without finishing first, a new rewrite clears the unfinished one.
  ASSERT_TRUE(Rewrite().ok());
  EXPECT_EQ(Load(), kNew);
}

TEST_F(DataDirRewriteTest, ACommittedRewriteMustBeFinishedBeforeAnother) {
  WriteOldState();
  int step = 0;
  while (!fs::exists(dir_ + "/rewrite/COMPLETE")) {
    fs::remove_all(dir_ + "/rewrite");
    ASSERT_LT(step, 50);
    (void)Rewrite(step++);
  }
  EXPECT_EQ(Rewrite().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(FinishInterruptedRewrite(dir_).ok());
  EXPECT_EQ(Load(), kNew);
}

TEST_F(DataDirRewriteTest, ALargeStateSpansSegmentsAndFillMayFlushAsItGoes) {
  WriteOldState();
  std::vector<std::string> expected;
  for (int i = 0; i < 200; ++i) expected.push_back("record-" + std::to_string(i));
  const absl::Status status = RewriteDataDir(dir_, 1,
                                             [&](int, LogWriter& writer) {
                                               for (size_t i = 0; i < expected.size(); ++i) {
                                                 writer.Append(kUser, Bytes(expected[i]));
                                                 if (i % 50 == 49) writer.Flush(0);
                                               }
                                               return absl::OkStatus();
                                             },
                                             {9}, {.segment_bytes = 512});
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Load(), (State{{"shard-0", expected}}));
  auto segments = ListSegmentFiles(dir_ + "/shard-0");
  ASSERT_TRUE(segments.ok());
  EXPECT_GT(segments->size(), 3u);
  EXPECT_EQ(segments->front().first_sequence, 9u);
}

TEST_F(DataDirRewriteTest, AFailingFillLeavesTheOldStateAndNoRewriteDirectory) {
  WriteOldState();
  const absl::Status status = RewriteDataDir(dir_, 3,
                                             [&](int shard, LogWriter& writer) {
                                               if (shard == 2)
                                                 return absl::InternalError("cannot encode");
                                               return Fill(shard, writer);
                                             },
                                             {});
  EXPECT_EQ(status.message(), "cannot encode");
  EXPECT_FALSE(fs::exists(dir_ + "/rewrite"));
  EXPECT_EQ(Load(), kOld);
}

}  // namespace
}  // namespace shardmq::store
