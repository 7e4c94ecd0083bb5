#include "store/log_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_format.h"
#include "base/check.h"
#include "base/log.h"
#include "store/log_format.h"
#include "store/segment_recovery.h"

namespace shardmq::store {
namespace {

constexpr int64_t kDiskFullRetryNs = 1'000'000'000;

absl::Status ErrnoStatus(int error, const std::string& what) {
  return absl::UnavailableError(absl::StrFormat("%s: %s", what, std::strerror(error)));
}

void RunAll(std::vector<LogWriter::Waiter>& waiters, const absl::Status& status) {
  std::vector<LogWriter::Waiter> run = std::move(waiters);
  waiters.clear();
  for (LogWriter::Waiter& w : run) w(status);
}

}  // namespace

LogWriter::LogWriter(const Options& options, AsyncFileIo& io) : options_(options), io_(io) {}

LogWriter::ScopedFd::~ScopedFd() {
  if (fd >= 0) ::close(fd);
}

LogWriter::~LogWriter() { *alive_ = false; }

absl::StatusOr<std::unique_ptr<LogWriter>> LogWriter::Open(const Options& options,
                                                           uint64_t next_sequence,
                                                           AsyncFileIo& io) {
  std::error_code error;
  std::filesystem::create_directories(options.directory, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrFormat("cannot create log directory %s: %s", options.directory, error.message()));
  }
  std::unique_ptr<LogWriter> writer(new LogWriter(options, io));
  const int directory_fd = ::open(options.directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (directory_fd < 0) return ErrnoStatus(errno, "cannot open log directory " + options.directory);
  writer->directory_fd_ = std::make_shared<ScopedFd>(directory_fd);
  writer->next_sequence_ = next_sequence;
  writer->durable_sequence_ = next_sequence;
  writer->bytes_since_snapshot_ = options.bytes_since_snapshot;
  writer->last_snapshot_bytes_ = options.last_snapshot_bytes;
  // The segments already there (recovered) are what compaction deletes.
  absl::StatusOr<std::vector<SegmentFile>> existing = ListSegmentFiles(options.directory);
  if (!existing.ok()) return existing.status();
  for (const SegmentFile& segment : *existing) {
    if (segment.first_sequence >= next_sequence) continue;  // reopened below, or not ours
    std::error_code size_error;
    const uint64_t bytes = std::filesystem::file_size(segment.path, size_error);
    writer->closed_segments_.push_back(
        {.first_sequence = segment.first_sequence, .bytes = size_error ? 0 : bytes});
    writer->closed_segment_bytes_ += size_error ? 0 : bytes;
  }
  if (absl::Status opened = writer->OpenSegment(next_sequence); !opened.ok()) return opened;
  return writer;
}

absl::Status LogWriter::OpenSegment(uint64_t first_sequence) {
  const std::string path = options_.directory + "/" + SegmentFileName(first_sequence);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0 && errno == EEXIST) {
    // Recovery found this segment without a record in it (its name is the
    // next sequence): start it again. Anything longer is not ours to cut.
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && st.st_size <= static_cast<off_t>(kSegmentHeaderSize)) {
      fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    } else {
      return absl::AlreadyExistsError(
          absl::StrFormat("log segment %s already holds records; recover the log first", path));
    }
  }
  if (fd < 0) return ErrnoStatus(errno, "cannot create log segment " + path);
  fd_ = std::make_shared<ScopedFd>(fd);
  segment_path_ = path;
  segment_first_sequence_ = first_sequence;
  file_offset_ = 0;
  std::string header;
  AppendSegmentHeader({.shard = options_.shard, .first_sequence = first_sequence}, header);
  appending_.bytes.insert(0, header);
  for (auto& [sequence, offset] : appending_.located) offset += header.size();
  directory_sync_due_ = true;
  return absl::OkStatus();
}

uint64_t LogWriter::Append(uint8_t type, absl::Span<const uint8_t> payload, bool locate) {
  const uint64_t sequence = next_sequence_++;
  if (failed_) return sequence;  // nothing more reaches the disk; waiters get the error
  Batch& batch = queued_segments_.empty() ? appending_ : queued_segments_.back();
  if (locate) batch.located.emplace_back(sequence, batch.bytes.size());
  AppendRecord(type, payload, batch.bytes);
  batch.end_sequence = next_sequence_;
  bytes_since_snapshot_ += FramedSize(payload.size());
  return sequence;
}

uint64_t LogWriter::BeginSnapshot() {
  SHARDMQ_CHECK(!in_snapshot_);
  in_snapshot_ = true;
  bytes_since_snapshot_ = 0;
  snapshot_begin_ = next_sequence_;
  // BEGIN must be a segment's first record: recovery finds snapshots by
  // reading only the first record of each segment. A segment with no record
  // yet (just opened) serves as it is; otherwise BEGIN waits for the next.
  const bool segment_empty = queued_segments_.empty() && next_sequence_ == segment_first_sequence_;
  if (!failed_ && !segment_empty) {
    queued_segments_.push_back({.first_sequence = next_sequence_});
    queued_segments_.back().end_sequence = next_sequence_;
  }
  Append(kRecordSnapshotBegin, {});
  return snapshot_begin_;
}

uint64_t LogWriter::EndSnapshot() {
  SHARDMQ_CHECK(in_snapshot_);
  in_snapshot_ = false;
  uint8_t payload[kSnapshotEndPayloadSize];
  for (size_t i = 0; i < sizeof(payload); ++i) {
    payload[i] = static_cast<uint8_t>(snapshot_begin_ >> (8 * i));
  }
  const uint64_t end = Append(kRecordSnapshotEnd, absl::MakeConstSpan(payload));
  last_snapshot_bytes_ = bytes_since_snapshot_;
  if (!failed_) {
    // A newer snapshot supersedes one whose deletions have not started.
    compaction_ = Compaction{.durable_at = end + 1, .keep_from = snapshot_begin_};
  }
  return end;
}

void LogWriter::WhenDurable(Waiter waiter) {
  if (failed_) {
    waiter(error_);
  } else if (!queued_segments_.empty()) {
    queued_segments_.back().waiters.push_back(std::move(waiter));
  } else if (appending_.end_sequence > durable_sequence_ &&
             appending_.end_sequence > writing_.end_sequence) {
    appending_.waiters.push_back(std::move(waiter));
  } else if (writing_.active) {
    writing_.waiters.push_back(std::move(waiter));
  } else {
    waiter(absl::OkStatus());
  }
}

void LogWriter::Flush(int64_t now_ns) {
  last_now_ns_ = now_ns;
  if (failed_ || in_flight_) return;
  if (writing_.active) {  // held after a full disk
    if (now_ns >= retry_at_ns_) WriteFrom(0);
    return;
  }
  if (appending_.end_sequence > durable_sequence_) {
    StartBatch();
    return;
  }
  if (!queued_segments_.empty()) {  // a snapshot waits for its segment
    Rotate();
    return;
  }
  if (unsynced_ && options_.sync_interval_ns > 0 && now_ns >= next_sync_ns()) {
    StartPeriodicSync();
  }
}

void LogWriter::StartPeriodicSync() {
  // Nothing is written while this sync runs (in_flight_), so it covers
  // every byte written so far.
  in_flight_ = true;
  unsynced_ = false;
  last_sync_ns_ = last_now_ns_;
  SyncThen(fd_, &LogWriter::PeriodicSyncDone);
}

void LogWriter::PeriodicSyncDone() {
  if (directory_sync_due_) {
    directory_sync_due_ = false;
    SyncThen(directory_fd_, &LogWriter::PeriodicSyncDone);
    return;
  }
  in_flight_ = false;
  Flush(last_now_ns_);
}

void LogWriter::StartBatch() {
  // The batch goes at file_offset_ of this segment, retried there after a
  // full disk: its located records' places are fixed now.
  if (!appending_.located.empty()) {
    std::vector<std::pair<uint64_t, uint64_t>> located = std::move(appending_.located);
    appending_.located.clear();
    if (located_) {
      for (const auto& [sequence, offset] : located) {
        located_(sequence, segment_first_sequence_, file_offset_ + offset);
      }
    }
  }
  writing_.bytes = std::make_shared<std::string>(std::move(appending_.bytes));
  writing_.end_sequence = appending_.end_sequence;
  writing_.waiters = std::move(appending_.waiters);
  writing_.active = true;
  appending_.bytes.clear();
  appending_.waiters.clear();
  WriteFrom(0);
}

AsyncFileIo::Done LogWriter::Guard(absl::AnyInvocable<void(int)> f) {
  return [alive = alive_, f = std::move(f)](int result) mutable {
    if (*alive) f(result);
  };
}

void LogWriter::WriteFrom(size_t done) {
  in_flight_ = true;
  std::shared_ptr<std::string> bytes = writing_.bytes;
  const auto span = absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes->data()) + done,
                                        bytes->size() - done);
  // The callback holds `bytes` and the file, so they outlive the write even
  // if the writer does not.
  io_.Write(fd_->fd, file_offset_ + done, span,
            Guard([this, done, bytes, file = fd_](int result) { OnWritten(done, result); }));
}

void LogWriter::OnWritten(size_t done, int result) {
  if (failed_) {  // stopped meanwhile (a compaction's sync failed)
    in_flight_ = false;
    return;
  }
  if (result <= 0) {
    in_flight_ = false;
    const int error = result == 0 ? EIO : -result;
    if (error == ENOSPC || error == EDQUOT) {
      Stall(error);
    } else {
      Fail(ErrnoStatus(error, "log write to " + segment_path_ + " failed"));
    }
    return;
  }
  done += static_cast<size_t>(result);
  if (done < writing_.bytes->size()) {
    WriteFrom(done);  // a short write: the rest, at its offset
    return;
  }
  file_offset_ += writing_.bytes->size();
  if (!error_.ok()) {
    SHARDMQ_LOG(kWarning, "store: log %s writable again; acknowledging resumes", segment_path_);
    error_ = absl::OkStatus();
  }
  if (options_.sync) {
    SyncThen(fd_, &LogWriter::SyncDirectoryIfDue);
  } else {
    unsynced_ = true;
    Complete();
  }
}

void LogWriter::SyncThen(std::shared_ptr<ScopedFd> file, void (LogWriter::*next)()) {
  const int fd = file->fd;
  io_.Sync(fd, Guard([this, next, file = std::move(file)](int result) {
             if (failed_) {
               in_flight_ = false;
               return;
             }
             if (result < 0) {
               in_flight_ = false;
               Fail(ErrnoStatus(-result, "log sync of " + segment_path_ + " failed"));
               return;
             }
             (this->*next)();
           }));
}

void LogWriter::SyncDirectoryIfDue() {
  if (!directory_sync_due_) {
    Complete();
    return;
  }
  // A new file's directory entry: without it a power cut can lose the whole
  // segment even though its data was synced.
  directory_sync_due_ = false;
  SyncThen(directory_fd_, &LogWriter::Complete);
}

void LogWriter::Complete() {
  in_flight_ = false;
  durable_sequence_ = writing_.end_sequence;
  writing_.active = false;
  writing_.bytes = std::make_shared<std::string>();
  RunAll(writing_.waiters, absl::OkStatus());
  MaybeCompact();
  if (failed_ || in_flight_) return;  // a waiter's Flush may have started the next batch
  if (file_offset_ >= options_.segment_bytes ||
      (!queued_segments_.empty() && !AppendingHasRecords())) {
    Rotate();
    return;
  }
  Flush(last_now_ns_);
}

void LogWriter::Rotate() {
  // The old segment must be whole on disk before the new one gets records:
  // recovery takes a torn tail anywhere but in the newest segment for damage.
  if (options_.sync) {
    SwitchSegment();  // every batch was synced already
    return;
  }
  in_flight_ = true;
  SyncThen(fd_, &LogWriter::SwitchSegment);
}

void LogWriter::SwitchSegment() {
  in_flight_ = false;
  closed_segments_.push_back({.first_sequence = segment_first_sequence_, .bytes = file_offset_});
  closed_segment_bytes_ += file_offset_;
  // Records appended meanwhile start the new segment (Append keeps sequence
  // numbers; the durable ones end exactly here).
  if (absl::Status opened = OpenSegment(durable_sequence_); !opened.ok()) {
    Fail(opened);
    return;
  }
  appending_.end_sequence = std::max(appending_.end_sequence, durable_sequence_);
  if (!AppendingHasRecords() && !queued_segments_.empty()) {
    // The segment a snapshot waited for: its records follow the header.
    Batch& next = queued_segments_.front();
    SHARDMQ_CHECK(next.first_sequence == durable_sequence_);
    for (const auto& [sequence, offset] : next.located) {
      appending_.located.emplace_back(sequence, appending_.bytes.size() + offset);
    }
    appending_.bytes.append(next.bytes);
    appending_.end_sequence = next.end_sequence;
    appending_.waiters = std::move(next.waiters);
    queued_segments_.erase(queued_segments_.begin());
  }
  Flush(last_now_ns_);
}

void LogWriter::MaybeCompact() {
  if (compacting_ || !compaction_ || durable_sequence_ < compaction_->durable_at) return;
  keep_from_ = compaction_->keep_from;
  compaction_.reset();
  deleting_.clear();
  std::vector<ClosedSegment> kept;
  for (const ClosedSegment& segment : closed_segments_) {
    (segment.first_sequence < std::min(keep_from_, pinned_from_) ? deleting_ : kept)
        .push_back(segment);
  }
  if (deleting_.empty()) return;
  closed_segments_ = std::move(kept);
  compacting_ = true;
  unlink_error_ = absl::OkStatus();
  if (options_.sync) {
    UnlinkOldSegments();  // END was fdatasync'ed, the new segments' entries too
    return;
  }
  // Async mode: "durable" meant written. Deleting the old history must not
  // reach the disk before the snapshot does, so sync the segment holding
  // the END (older snapshot segments were synced when they were closed) and
  // the directory (the snapshot's segment entries) first.
  std::shared_ptr<ScopedFd> file = fd_;
  const int fd = file->fd;
  io_.Sync(fd, Guard([this, file](int result) {
             if (result < 0) {
               // As for any failed sync: the kernel may have dropped the
               // pages, the log cannot be trusted any more.
               compacting_ = false;
               last_compaction_error_ = ErrnoStatus(-result, "compaction sync failed");
               if (!failed_) Fail(ErrnoStatus(-result, "log sync of " + segment_path_ + " failed"));
               return;
             }
             io_.Sync(directory_fd_->fd, Guard([this, dir = directory_fd_](int dir_result) {
                        if (dir_result < 0) {
                          compacting_ = false;
                          last_compaction_error_ = ErrnoStatus(
                              -dir_result, "sync of log directory " + options_.directory);
                          closed_segments_.insert(closed_segments_.begin(), deleting_.begin(),
                                                  deleting_.end());
                          return;
                        }
                        UnlinkOldSegments();
                      }));
           }));
}

void LogWriter::UnlinkOldSegments() {
  // One more than the unlinks, taken off after issuing them all: a
  // completion called from inside Unlink must not finish early.
  unlinks_left_ = deleting_.size() + 1;
  std::vector<ClosedSegment> victims = deleting_;
  for (const ClosedSegment& segment : victims) {
    io_.Unlink(directory_fd_->fd, SegmentFileName(segment.first_sequence),
               Guard([this, segment, dir = directory_fd_](int result) {
                 if (result < 0 && result != -ENOENT) {
                   if (unlink_error_.ok()) {
                     unlink_error_ = ErrnoStatus(
                         -result,
                         absl::StrFormat("cannot delete old segment %s/%s", options_.directory,
                                         SegmentFileName(segment.first_sequence)));
                   }
                   closed_segments_.insert(closed_segments_.begin(), segment);
                 } else {
                   closed_segment_bytes_ -= std::min(closed_segment_bytes_, segment.bytes);
                   ++segments_deleted_;
                 }
                 if (--unlinks_left_ == 0) CompactionSynced();
               }));
  }
  if (--unlinks_left_ == 0) CompactionSynced();
}

void LogWriter::CompactionSynced() {
  // The unlinks are durable once the directory is.
  io_.Sync(directory_fd_->fd, Guard([this, dir = directory_fd_](int result) {
             if (result < 0 && unlink_error_.ok()) {
               unlink_error_ = ErrnoStatus(-result, "sync of log directory " + options_.directory);
             }
             CompactionDone();
           }));
}

void LogWriter::CompactionDone() {
  compacting_ = false;
  deleting_.clear();
  if (!unlink_error_.ok()) {
    SHARDMQ_LOG(kWarning, "store: compaction: %s; the files are deleted later",
                std::string(unlink_error_.message()));
  }
  last_compaction_error_ = unlink_error_;
  std::sort(closed_segments_.begin(), closed_segments_.end(),
            [](const ClosedSegment& a, const ClosedSegment& b) {
              return a.first_sequence < b.first_sequence;
            });
  MaybeCompact();  // a newer snapshot finished meanwhile
}

void LogWriter::Stall(int error) {
  // Keep the batch and retry it whole at the same offset: pwrite is
  // idempotent, so bytes a short write left behind are simply written again.
  retry_at_ns_ = last_now_ns_ + kDiskFullRetryNs;
  if (error_.ok()) {
    SHARDMQ_LOG(kError,
                "store: log write to %s failed: %s; holding %d bytes and not acknowledging "
                "what they carry until the write succeeds (retried every second)",
                segment_path_, std::strerror(error), pending_bytes());
  }
  error_ = absl::ResourceExhaustedError(
      absl::StrFormat("log write to %s failed: %s", segment_path_, std::strerror(error)));
}

void LogWriter::Fail(absl::Status status) {
  SHARDMQ_LOG(kError, "store: %s; the log is stopped, nothing more is acknowledged as stored",
              std::string(status.message()));
  failed_ = true;
  error_ = status;
  writing_.active = false;
  RunAll(writing_.waiters, error_);
  RunAll(appending_.waiters, error_);
  appending_.bytes.clear();
  appending_.located.clear();
  std::vector<Batch> queued = std::move(queued_segments_);
  queued_segments_.clear();
  for (Batch& batch : queued) RunAll(batch.waiters, error_);
}

}  // namespace shardmq::store
