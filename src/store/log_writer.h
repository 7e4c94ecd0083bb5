// A shard's append-only log: records in, group-committed writes out.
//
// Everything runs on the shard's thread; the disk is reached only through
// AsyncFileIo, so the shard never waits for it. Records appended during a
// loop turn, and while the previous write was on its way, go to disk in one
// write (and, with `sync`, one fdatasync): group commit, so many clients'
// records share one disk round trip.
//
//   writer->Append(kRecordPublish, payload);          // any number per turn
//   writer->WhenDurable([](absl::Status s) { ... });  // e.g. send PUBACK then
//   writer->Flush(now_ns);                            // at the end of the turn
//
// Errors: a full disk (ENOSPC, EDQUOT) holds the records and their waiters
// (nothing appended is acknowledged) and retries the write once a second, so
// the log carries on where it stopped when space returns; error() says why
// meanwhile. Any other write error, or a failed sync (after which the kernel
// may have dropped the dirty pages, so a retry could report success for data
// that is gone), stops the log for good: waiters get the error.
//
// Snapshots and compaction. The log only grows; to bound it (and recovery
// time) the owner writes, now and then, a snapshot: every record needed to
// rebuild the live state, framed by two store records, and the writer then
// deletes the segments before it.
//
//   if (writer->CompactionDue(threshold)) {
//     writer->BeginSnapshot();              // a new segment starts here
//     for (...) writer->Append(type, state);  // the live state, nothing else
//     writer->EndSnapshot();                // old segments go once this is durable
//   }
//
// Layout on disk: BeginSnapshot() ends the current segment (as if it were
// full) so SNAPSHOT_BEGIN (kRecordSnapshotBegin, empty payload) is always the
// FIRST record of a segment, whose name is therefore the snapshot's sequence
// number; SNAPSHOT_END (kRecordSnapshotEnd, payload = that sequence, u64 LE)
// follows the state records, possibly some segments later if the snapshot is
// bigger than a segment. No other record may come between the two: call
// Begin, the Appends and End in one call stack. Once the END is durable (in
// async mode the writer fdatasyncs the segment and the directory first), the
// segments older than the snapshot's first one are unlinked through the
// AsyncFileIo and the directory synced; a failure there is not fatal (the
// files are left for the next compaction or for recovery to delete) and is
// kept in last_compaction_error(). RecoverSegments starts at the newest
// snapshot that has its END (segment_recovery.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "store/async_file_io.h"

namespace shardmq::store {

class LogWriter {
 public:
  struct Options {
    // The shard's log directory (created if missing).
    std::string directory;
    uint32_t shard = 0;
    // A new segment file starts once the current one holds this much.
    uint64_t segment_bytes = 64 << 20;
    // true: a record is durable once fdatasync says so (--durability=sync);
    // false: once written to the kernel (--durability=async: a crash of the
    // broker loses at most the write in flight, a crash of the machine what
    // was written since the last fdatasync).
    bool sync = true;
    // sync == false: what was written is fdatasync'ed by a Flush at least
    // this long after the previous fdatasync (0: only when a segment is
    // full), bounding what a power loss takes. Waiters never wait for it.
    int64_t sync_interval_ns = 0;
    // Compaction accounting carried over from recovery, so CompactionDue()
    // is right from the start: RecoveryReport::bytes and
    // RecoveryReport::snapshot_bytes.
    uint64_t bytes_since_snapshot = 0;
    uint64_t last_snapshot_bytes = 0;
  };
  using Waiter = absl::AnyInvocable<void(absl::Status)>;

  // Starts a new segment whose first record gets `next_sequence` (from
  // RecoverSegments). Opening files blocks: call it at start-up, before the
  // shard serves.
  static absl::StatusOr<std::unique_ptr<LogWriter>> Open(const Options& options,
                                                         uint64_t next_sequence, AsyncFileIo& io);
  // Completions still held by the I/O layer do nothing once the writer is
  // gone; records not yet durable are lost (never acknowledged), and an
  // unfinished compaction leaves old segments for recovery to delete.
  ~LogWriter();

  // Adds a record to the next write and returns its sequence number.
  // `locate`: once the record's place in a segment file is fixed (when its
  // write starts), the OnLocated callback is told, so the owner can read it
  // back later (a message kept only in the log: --max-memory).
  uint64_t Append(uint8_t type, absl::Span<const uint8_t> payload, bool locate = false);
  // Where located records went: `segment` is the first sequence (name) of
  // the segment file, `offset` the record's first byte in it. Runs on the
  // shard thread from inside Flush (or a completion).
  using Located = absl::AnyInvocable<void(uint64_t sequence, uint64_t segment, uint64_t offset)>;
  void OnLocated(Located located) { located_ = std::move(located); }
  // Compaction keeps the segments from this first sequence on, even those
  // older than the newest snapshot: the owner still reads records in them.
  // UINT64_MAX (the default): no such segment. Segments it no longer covers
  // go with the next compaction.
  void KeepSegmentsFrom(uint64_t first_sequence) { pinned_from_ = first_sequence; }
  uint64_t kept_segments_from() const { return pinned_from_; }
  const std::string& directory() const { return options_.directory; }
  // `waiter` runs once every record appended before this call is durable
  // (OK), or when the log has failed for good (the error). Runs at once, with
  // OK, when nothing is pending.
  void WhenDurable(Waiter waiter);
  // Starts writing what was appended, unless a write is on its way (then the
  // records follow when it completes) or a full disk's retry is not due.
  void Flush(int64_t now_ns);

  // Starts a snapshot: the records appended so far stay in the current
  // segment, SNAPSHOT_BEGIN starts a new one (unless the current segment has
  // no record yet: then it is that segment's first). Returns BEGIN's
  // sequence. Append the live state next, then call EndSnapshot(), with
  // nothing else in between. Snapshots do not nest.
  uint64_t BeginSnapshot();
  // Appends SNAPSHOT_END. Once it is durable the segments before the
  // snapshot's are deleted (see the file comment). Returns END's sequence.
  uint64_t EndSnapshot();
  // Bytes (framed records) appended since the last snapshot began, the
  // snapshot itself included: about what recovery would read now.
  uint64_t bytes_since_snapshot() const { return bytes_since_snapshot_; }
  // Framed bytes from the last snapshot's BEGIN through its END.
  uint64_t last_snapshot_bytes() const { return last_snapshot_bytes_; }
  // Bytes in the directory's segment files, counting what is appended and
  // not yet written, less the segments compaction deleted.
  uint64_t live_segment_bytes() const {
    return closed_segment_bytes_ + file_offset_ + pending_bytes();
  }
  // The broker's policy: a snapshot is due once the log since the last one
  // is more than `threshold` and more than twice the last snapshot, so
  // rewriting the state costs at most half of what it reclaims.
  bool CompactionDue(uint64_t threshold) const {
    return !in_snapshot_ && bytes_since_snapshot_ > std::max(threshold, 2 * last_snapshot_bytes_);
  }
  bool in_snapshot() const { return in_snapshot_; }
  // Segments deleted by compaction so far, and why the last deletion or
  // directory sync failed (OK if it did not).
  uint64_t segments_deleted() const { return segments_deleted_; }
  const absl::Status& last_compaction_error() const { return last_compaction_error_; }
  // True while deletions of a finished snapshot are waiting or on their way.
  bool compaction_pending() const { return compaction_.has_value() || compacting_; }

  // Records with a lower sequence number are durable.
  uint64_t durable_sequence() const { return durable_sequence_; }
  uint64_t next_sequence() const { return next_sequence_; }
  // Bytes appended and not yet durable.
  size_t pending_bytes() const {
    size_t bytes = appending_.bytes.size() + writing_.bytes->size();
    for (const Batch& b : queued_segments_) bytes += b.bytes.size();
    return bytes;
  }
  // Async mode: bytes written since the last fdatasync, which a Flush at or
  // after next_sync_ns() syncs. The caller arranges such a Flush (a timer)
  // when nothing else would come.
  bool unsynced() const { return unsynced_; }
  int64_t next_sync_ns() const { return last_sync_ns_ + options_.sync_interval_ns; }
  // Why the log is stalled (disk full) or stopped; OK otherwise.
  const absl::Status& error() const { return error_; }
  bool failed() const { return failed_; }
  // The segment file being written.
  const std::string& segment_path() const { return segment_path_; }

 private:
  // Closes its fd when the last holder lets go: a write or sync in flight
  // holds the file it is for, so a segment closed by rotation or by the
  // writer's end stays open until the disk is done with it.
  struct ScopedFd {
    int fd = -1;
    explicit ScopedFd(int f) : fd(f) {}
    ScopedFd(const ScopedFd&) = delete;
    ScopedFd& operator=(const ScopedFd&) = delete;
    ~ScopedFd();
  };
  struct Batch {
    uint64_t first_sequence = 0;  // queued_segments_ only: the segment's name
    std::string bytes;
    uint64_t end_sequence = 0;  // sequence after the batch's last record
    std::vector<Waiter> waiters;
    // Records appended with `locate`: sequence and offset in `bytes`.
    std::vector<std::pair<uint64_t, uint64_t>> located;
  };
  // The batch on its way to disk. Its bytes are shared with the I/O
  // callbacks, so a writer destroyed mid-write leaves them valid.
  struct WritingBatch {
    std::shared_ptr<std::string> bytes = std::make_shared<std::string>();
    uint64_t end_sequence = 0;
    std::vector<Waiter> waiters;
    bool active = false;  // written, or held for a retry after a full disk
  };

  LogWriter(const Options& options, AsyncFileIo& io);
  absl::Status OpenSegment(uint64_t first_sequence);
  void StartBatch();
  void WriteFrom(size_t done);
  void OnWritten(size_t done, int result);
  void SyncThen(std::shared_ptr<ScopedFd> file, void (LogWriter::*next)());
  void SyncDirectoryIfDue();
  void Complete();
  // Async mode: the periodic fdatasync, then the new segment's directory
  // entry if it is due.
  void StartPeriodicSync();
  void PeriodicSyncDone();
  bool AppendingHasRecords() const {
    return appending_.end_sequence > durable_sequence_ &&
           appending_.end_sequence > writing_.end_sequence;
  }
  void Rotate();
  void SwitchSegment();
  // Compaction: starts deleting once the pending snapshot's END is durable.
  void MaybeCompact();
  void CompactionSynced();
  void UnlinkOldSegments();
  void CompactionDone();
  void Stall(int error);
  void Fail(absl::Status status);
  // Wraps a completion so it does nothing once the writer is gone.
  AsyncFileIo::Done Guard(absl::AnyInvocable<void(int)> f);

  Options options_;
  AsyncFileIo& io_;
  std::shared_ptr<ScopedFd> directory_fd_;
  std::shared_ptr<ScopedFd> fd_;
  std::string segment_path_;
  uint64_t file_offset_ = 0;  // where the write in flight (or the next) starts
  // A new segment's directory entry is synced with its first batch.
  bool directory_sync_due_ = false;

  Batch appending_;
  WritingBatch writing_;
  // Records for segments after the current one, oldest first: a snapshot's
  // BEGIN (and what follows it) waits here while records appended before it
  // are still to be written to the current segment. Append adds to the
  // newest; each becomes appending_ when the writer switches to its segment.
  std::vector<Batch> queued_segments_;
  bool in_flight_ = false;
  uint64_t next_sequence_ = 0;
  uint64_t durable_sequence_ = 0;

  absl::Status error_;
  bool failed_ = false;
  int64_t retry_at_ns_ = 0;
  int64_t last_now_ns_ = 0;
  bool unsynced_ = false;
  int64_t last_sync_ns_ = 0;

  // Snapshots and compaction.
  struct ClosedSegment {
    uint64_t first_sequence = 0;
    uint64_t bytes = 0;
  };
  // Segment files before the current one, oldest first.
  std::vector<ClosedSegment> closed_segments_;
  uint64_t closed_segment_bytes_ = 0;
  uint64_t segment_first_sequence_ = 0;  // of the current segment
  bool in_snapshot_ = false;
  uint64_t snapshot_begin_ = 0;
  uint64_t bytes_since_snapshot_ = 0;
  uint64_t last_snapshot_bytes_ = 0;
  struct Compaction {
    uint64_t durable_at = 0;  // END's sequence + 1
    uint64_t keep_from = 0;   // the snapshot's first segment
  };
  std::optional<Compaction> compaction_;  // the newest finished snapshot's
  bool compacting_ = false;
  std::vector<ClosedSegment> deleting_;
  uint64_t keep_from_ = 0;
  uint64_t pinned_from_ = UINT64_MAX;
  Located located_;
  size_t unlinks_left_ = 0;
  absl::Status unlink_error_;
  uint64_t segments_deleted_ = 0;
  absl::Status last_compaction_error_;
  // Set by the destructor: callbacks still held by the I/O layer must not
  // touch a destroyed writer.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace shardmq::store
