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
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "store/log_format.h"

namespace shardmq::store {

// The file name of the segment whose first record has `first_sequence`.
std::string SegmentFileName(uint64_t first_sequence);

struct RecoveryOptions {
  // Keep what is readable past damage instead of refusing to start.
  bool salvage = false;
};

struct RecoveryReport {
  size_t segments = 0;
  size_t records = 0;
  uint64_t bytes = 0;  // of good records, headers included
  // The sequence number the next record appended gets.
  uint64_t next_sequence = 0;
  // A torn tail cut off the newest segment: which file, and how many bytes
  // were dropped from it (0: none).
  std::string truncated_file;
  uint64_t truncated_bytes = 0;
  // With salvage: one line per skipped stretch ("file: offset N: reason").
  std::vector<std::string> salvaged;
};

// Reads every segment of `directory` (a shard's log directory; a missing or
// empty one is an empty log) in sequence order, calling `visit` with each good
// record and its sequence number. An error from `visit` stops recovery and is
// returned as it is.
absl::StatusOr<RecoveryReport> RecoverSegments(
    const std::string& directory, const RecoveryOptions& options,
    absl::FunctionRef<absl::Status(const Record&, uint64_t sequence)> visit);

}  // namespace shardmq::store
