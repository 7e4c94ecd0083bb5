// Reading a shard's log back at start-up.
//
// A shard's log is a directory of segment files named by the sequence number
// of their first record ("00000000000000000000.log"), written one after the
// other. Recovery reads them in order and hands every good record to the
// caller, which rebuilds its state from them. What a crash can leave behind
// is repaired; what only damage can explain stops start-up:
//   - a torn tail in the newest segment (the broker died mid-write) is cut
//     off the file at the last good record and reported;
//   - a bad record anywhere else, a segment that is not a shardmq log, or
//     segments whose sequence numbers overlap, is an error naming the file
//     and offset, unless `salvage` is set: then the readable records on both
//     sides of the damage are kept and each skipped stretch is reported.
//
// Snapshots (log_writer.h has the layout). Replay starts at the newest
// snapshot that is complete, i.e. whose SNAPSHOT_BEGIN is followed by its
// SNAPSHOT_END, so recovery reads the live state plus what came after it,
// not the whole history:
//   1. Segments are examined newest first, reading only their header and
//      first record: a snapshot always starts a segment, so a segment whose
//      first record is SNAPSHOT_BEGIN is a candidate. The candidate's records
//      are scanned for its END (stopping at the next BEGIN); the first
//      complete one is the starting point. Segments before it are not read.
//   2. A candidate without its END is a snapshot the broker died writing.
//      Nothing else can follow it (the writer appends nothing between BEGIN
//      and END, and this recovery removes it before a writer reopens the
//      log), so its segments, from its BEGIN to the end of the log, are
//      skipped and deleted (newest first, so a crash during the deletion
//      leaves the same situation). Replay falls back to the previous
//      complete snapshot, or to the start of the log.
//   3. Records from the starting point on are replayed as before; store
//      records (types below kFirstUserRecordType) are never handed to the
//      caller.
//   4. After a successful replay, segments older than the snapshot (left by
//      a crash between the END becoming durable and the writer's deletions)
//      are deleted and the directory synced; a failure to delete is reported,
//      not fatal (they are skipped next time too).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "store/log_format.h"

namespace shardmq::store {

// The file name of the segment whose first record has `first_sequence`.
std::string SegmentFileName(uint64_t first_sequence);

struct SegmentFile {
  uint64_t first_sequence = 0;  // from the name
  std::string path;
};
// The segment files of `directory` (named as SegmentFileName makes them),
// oldest first; other files are left out. A missing directory has none.
absl::StatusOr<std::vector<SegmentFile>> ListSegmentFiles(const std::string& directory);

struct RecoveryOptions {
  // Keep what is readable past damage instead of refusing to start.
  bool salvage = false;
  // Asked after a successful replay: segments from this first sequence on
  // are kept even if older than the snapshot, because the caller still reads
  // records in them (a snapshot's references to spilled messages). Unset:
  // everything older than the snapshot goes.
  std::function<uint64_t()> keep_segments_from;
};

struct RecoveryReport {
  size_t segments = 0;  // read
  // Records handed to the visitor.
  size_t records = 0;
  // Framed bytes of every good record read from the starting point on
  // (store records included): the log since the snapshot, what
  // LogWriter::Options::bytes_since_snapshot wants.
  uint64_t bytes = 0;
  // The sequence number the next record appended gets.
  uint64_t next_sequence = 0;
  // A torn tail cut off the newest segment: which file, and how many bytes
  // were dropped from it (0: none).
  std::string truncated_file;
  uint64_t truncated_bytes = 0;
  // With salvage: one line per skipped stretch ("file: offset N: reason").
  std::vector<std::string> salvaged;

  // Replay started at a complete snapshot: its BEGIN's sequence and its
  // framed size, BEGIN through END (LogWriter::Options::last_snapshot_bytes).
  bool used_snapshot = false;
  uint64_t snapshot_sequence = 0;
  uint64_t snapshot_bytes = 0;
  // Segments older than that snapshot: not read.
  size_t segments_skipped = 0;
  // A snapshot without its END (the broker died writing it) was dropped:
  // its BEGIN's sequence.
  bool dropped_incomplete_snapshot = false;
  uint64_t incomplete_snapshot_sequence = 0;
  // Segment files deleted: the incomplete snapshot's, and those older than
  // the snapshot used. And the ones that could not be ("path: reason").
  std::vector<std::string> deleted;
  std::vector<std::string> delete_failures;
};

// Reads the segments of `directory` (a shard's log directory; a missing or
// empty one is an empty log) in sequence order from the newest complete
// snapshot on (see above), calling `visit` with each good record of the
// caller's types and its sequence number. An error from `visit` stops
// recovery and is returned as it is; nothing is deleted then. Blocks: call it
// at start-up, before a LogWriter opens the directory.
absl::StatusOr<RecoveryReport> RecoverSegments(
    const std::string& directory, const RecoveryOptions& options,
    absl::FunctionRef<absl::Status(const Record&, uint64_t sequence)> visit);

}  // namespace shardmq::store
