#include "store/data_dir_rewrite.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "store/blocking_file_io.h"

namespace shardmq::store {
namespace {

namespace fs = std::filesystem;

constexpr char kRewriteDir[] = "rewrite";
constexpr char kComplete[] = "COMPLETE";
constexpr char kShardPrefix[] = "shard-";

// Counts filesystem steps so a test can stop before any of them.
class Steps {
 public:
  explicit Steps(int crash_before) : crash_before_(crash_before) {}
  absl::Status Next(absl::string_view what) {
    if (crash_before_ >= 0 && taken_ >= crash_before_) {
      return absl::AbortedError(
          absl::StrFormat("simulated crash before step %d (%s)", taken_, what));
    }
    ++taken_;
    return absl::OkStatus();
  }

 private:
  int crash_before_;
  int taken_ = 0;
};

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrFormat("%s: %s", what, std::strerror(errno)));
}

// fsync(2) of a file or directory.
absl::Status SyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open " + path + " to sync it");
  const int synced = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return synced == 0 ? absl::OkStatus() : Errno("cannot sync " + path);
}

absl::Status FsError(const std::error_code& error, const std::string& what) {
  return absl::UnavailableError(absl::StrFormat("%s: %s", what, error.message()));
}

// The shard index of a "shard-<i>" name, or -1.
int ShardIndex(const std::string& name) {
  absl::string_view rest = name;
  int index = -1;
  if (!absl::ConsumePrefix(&rest, kShardPrefix) || !absl::SimpleAtoi(rest, &index) || index < 0 ||
      absl::StrFormat("%s%d", kShardPrefix, index) != name) {
    return -1;
  }
  return index;
}

absl::StatusOr<int> ReadComplete(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  int shards = -1;
  if (!(in >> word >> shards) || word != "shards" || shards < 0) {
    return absl::DataLossError(absl::StrFormat("%s does not say how many shards", path));
  }
  return shards;
}

// Deletes an old shard directory one file at a time (a crash can stop it
// anywhere; whatever is left is deleted again when finishing).
absl::Status RemoveOldShard(const fs::path& directory, Steps& steps) {
  std::error_code error;
  std::vector<fs::path> entries;
  for (const fs::directory_entry& entry : fs::directory_iterator(directory, error)) {
    entries.push_back(entry.path());
  }
  if (error) return FsError(error, "cannot list " + directory.string());
  std::sort(entries.begin(), entries.end());
  for (const fs::path& entry : entries) {
    if (absl::Status s = steps.Next("delete " + entry.string()); !s.ok()) return s;
    fs::remove_all(entry, error);
    if (error) return FsError(error, "cannot delete " + entry.string());
  }
  if (absl::Status s = steps.Next("delete " + directory.string()); !s.ok()) return s;
  fs::remove(directory, error);
  if (error) return FsError(error, "cannot delete " + directory.string());
  return absl::OkStatus();
}

// Steps 3 and 4 of the protocol (data_dir_rewrite.h); COMPLETE exists.
absl::Status Replace(const std::string& data_dir, int shards, Steps& steps, int& removed,
                     int& moved) {
  const fs::path rewrite = fs::path(data_dir) / kRewriteDir;
  std::error_code error;
  std::vector<fs::path> old;
  for (const fs::directory_entry& entry : fs::directory_iterator(data_dir, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kShardPrefix, 0) != 0) continue;
    const int index = ShardIndex(name);
    const bool is_new = index >= 0 && index < shards && !fs::exists(rewrite / name);
    if (!is_new) old.push_back(entry.path());
  }
  if (error) return FsError(error, "cannot list " + data_dir);
  std::sort(old.begin(), old.end());
  for (const fs::path& directory : old) {
    if (absl::Status s = RemoveOldShard(directory, steps); !s.ok()) return s;
    ++removed;
  }
  if (absl::Status s = steps.Next("sync " + data_dir); !s.ok()) return s;
  if (absl::Status s = SyncPath(data_dir); !s.ok()) return s;
  for (int i = 0; i < shards; ++i) {
    const std::string name = absl::StrFormat("%s%d", kShardPrefix, i);
    if (!fs::exists(rewrite / name)) continue;  // moved before a crash
    if (absl::Status s = steps.Next("rename " + name); !s.ok()) return s;
    fs::rename(rewrite / name, fs::path(data_dir) / name, error);
    if (error) return FsError(error, "cannot move " + (rewrite / name).string());
    ++moved;
  }
  if (absl::Status s = steps.Next("sync after renames"); !s.ok()) return s;
  if (absl::Status s = SyncPath(data_dir); !s.ok()) return s;
  if (absl::Status s = SyncPath(rewrite.string()); !s.ok()) return s;
  if (absl::Status s = steps.Next("delete COMPLETE"); !s.ok()) return s;
  fs::remove(rewrite / kComplete, error);
  if (error) return FsError(error, "cannot delete " + (rewrite / kComplete).string());
  if (absl::Status s = steps.Next("delete rewrite/"); !s.ok()) return s;
  fs::remove_all(rewrite, error);
  if (error) return FsError(error, "cannot delete " + rewrite.string());
  return SyncPath(data_dir);
}

absl::Status WriteShardLog(const std::string& directory, int shard, uint64_t first_sequence,
                           const RewriteOptions& options,
                           absl::FunctionRef<absl::Status(int, LogWriter&)> fill) {
  BlockingFileIo io;
  LogWriter::Options log_options;
  log_options.directory = directory;
  log_options.shard = static_cast<uint32_t>(shard);
  log_options.segment_bytes = options.segment_bytes;
  log_options.sync = true;
  absl::StatusOr<std::unique_ptr<LogWriter>> opened =
      LogWriter::Open(log_options, first_sequence, io);
  if (!opened.ok()) return opened.status();
  LogWriter& writer = **opened;
  writer.BeginSnapshot();
  absl::Status filled = fill(shard, writer);
  writer.EndSnapshot();
  if (!filled.ok()) return filled;
  writer.Flush(0);
  if (!writer.error().ok()) return writer.error();
  if (writer.durable_sequence() != writer.next_sequence()) {
    return absl::InternalError(
        absl::StrFormat("the new log of shard %d was not all written", shard));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RewriteDataDir(const std::string& data_dir, int shards,
                            absl::FunctionRef<absl::Status(int shard, LogWriter& writer)> fill,
                            const std::vector<uint64_t>& next_sequence_per_shard,
                            const RewriteOptions& options) {
  Steps steps(options.crash_before_step);
  const fs::path rewrite = fs::path(data_dir) / kRewriteDir;
  std::error_code error;
  if (fs::exists(rewrite / kComplete, error)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s holds a committed rewrite; call FinishInterruptedRewrite first", rewrite.string()));
  }
  if (fs::exists(rewrite, error)) {
    if (absl::Status s = steps.Next("delete an unfinished rewrite/"); !s.ok()) return s;
    fs::remove_all(rewrite, error);
    if (error) return FsError(error, "cannot delete " + rewrite.string());
  }
  if (absl::Status s = steps.Next("create rewrite/"); !s.ok()) return s;
  fs::create_directories(rewrite, error);
  if (error) return FsError(error, "cannot create " + rewrite.string());

  uint64_t first_sequence = 0;
  for (uint64_t next : next_sequence_per_shard) first_sequence = std::max(first_sequence, next);
  // Until COMPLETE exists, a failure takes rewrite/ away: the old logs rule.
  auto abandon = [&](absl::Status status) {
    if (status.code() != absl::StatusCode::kAborted) {  // not a simulated crash
      std::error_code ignored;
      fs::remove_all(rewrite, ignored);
    }
    return status;
  };
  for (int i = 0; i < shards; ++i) {
    if (absl::Status s = steps.Next(absl::StrFormat("write shard %d", i)); !s.ok()) return s;
    const std::string directory = (rewrite / absl::StrFormat("%s%d", kShardPrefix, i)).string();
    if (absl::Status s = WriteShardLog(directory, i, first_sequence, options, fill); !s.ok()) {
      return abandon(s);
    }
  }
  // The shard directories' entries, and rewrite/'s own.
  if (absl::Status s = SyncPath(rewrite.string()); !s.ok()) return abandon(s);
  if (absl::Status s = SyncPath(data_dir); !s.ok()) return abandon(s);

  // The commit point: COMPLETE appears whole, by rename.
  if (absl::Status s = steps.Next("write COMPLETE"); !s.ok()) return s;
  const fs::path temp = rewrite / (std::string(kComplete) + ".tmp");
  {
    std::ofstream out(temp, std::ios::trunc);
    out << "shards " << shards << "\n";
    out.flush();
    if (!out) return abandon(Errno("cannot write " + temp.string()));
  }
  if (absl::Status s = SyncPath(temp.string()); !s.ok()) return abandon(s);
  fs::rename(temp, rewrite / kComplete, error);
  if (error) return abandon(FsError(error, "cannot rename " + temp.string()));
  if (absl::Status s = SyncPath(rewrite.string()); !s.ok()) return s;

  int removed = 0, moved = 0;
  return Replace(data_dir, shards, steps, removed, moved);
}

absl::StatusOr<std::string> FinishInterruptedRewrite(const std::string& data_dir,
                                                     const RewriteOptions& options) {
  Steps steps(options.crash_before_step);
  const fs::path rewrite = fs::path(data_dir) / kRewriteDir;
  std::error_code error;
  if (!fs::exists(rewrite, error)) return std::string();
  if (!fs::exists(rewrite / kComplete, error)) {
    if (fs::is_empty(rewrite, error) && !error) {
      // What step 4 leaves when it is cut short after deleting COMPLETE.
      if (absl::Status s = steps.Next("delete an empty rewrite/"); !s.ok()) return s;
      fs::remove(rewrite, error);
      if (error) return FsError(error, "cannot delete " + rewrite.string());
      if (absl::Status s = SyncPath(data_dir); !s.ok()) return s;
      return absl::StrFormat("removed %s, left empty by a finished rewrite of the data directory",
                             rewrite.string());
    }
    if (absl::Status s = steps.Next("delete an unfinished rewrite/"); !s.ok()) return s;
    fs::remove_all(rewrite, error);
    if (error) return FsError(error, "cannot delete " + rewrite.string());
    if (absl::Status s = SyncPath(data_dir); !s.ok()) return s;
    return absl::StrFormat(
        "removed %s, a rewrite of the data directory interrupted before it was complete; the "
        "shard directories it was replacing are used as they are",
        rewrite.string());
  }
  absl::StatusOr<int> shards = ReadComplete((rewrite / kComplete).string());
  if (!shards.ok()) return shards.status();
  int removed = 0, moved = 0;
  if (absl::Status s = Replace(data_dir, *shards, steps, removed, moved); !s.ok()) return s;
  return absl::StrFormat(
      "finished an interrupted rewrite of the data directory into %d shards: %d old shard "
      "directories removed, %d new ones moved into place",
      *shards, removed, moved);
}

}  // namespace shardmq::store
