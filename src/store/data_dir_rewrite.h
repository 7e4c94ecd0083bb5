// Rewriting a whole data directory at start-up, crash-safely.
//
// Used before the shards start when their logs must be rebuilt from the
// recovered state: the shard count changed (state moves between shard
// directories), or the history is much larger than the live state. The
// caller recovers the old directories, then calls RewriteDataDir, whose
// `fill` appends each new shard's state; each new log is one snapshot
// (log_writer.h), so recovery reads it like any compacted log.
//
//   if (absl::StatusOr<std::string> note = FinishInterruptedRewrite(dir); ...)  // always first
//   ... recover every <dir>/shard-* ...
//   RewriteDataDir(dir, shards, [&](int shard, LogWriter& w) { ...Append... }, next_sequences);
//
// The protocol, and what a crash at each point leaves:
//   1. <dir>/rewrite/ is created (an unfinished one from an earlier attempt
//      is removed first) and each new shard's log is written to
//      <dir>/rewrite/shard-<i>/ through a LogWriter over BlockingFileIo in
//      sync mode: files and their directory are fsynced. Then rewrite/ and
//      <dir> are fsynced, so every new entry is durable.
//        Crash: rewrite/ without COMPLETE. The old shard directories are
//        untouched; FinishInterruptedRewrite deletes rewrite/. OLD state.
//   2. rewrite/COMPLETE ("shards <N>") is written to COMPLETE.tmp, fsynced,
//      renamed, and rewrite/ fsynced. This rename is the commit point.
//        Crash after it: FinishInterruptedRewrite completes 3-4. NEW state.
//   3. Every old <dir>/shard-* directory is deleted (file by file), <dir>
//      fsynced, then each rewrite/shard-<i> renamed to <dir>/shard-<i>, and
//      <dir> and rewrite/ fsynced.
//        Crash: COMPLETE is there; a <dir>/shard-<i> is new exactly when
//        i < N and rewrite/shard-<i> is gone (a rename is atomic and the
//        old one was deleted before it), so finishing deletes every other
//        shard-* (old, or partly deleted) and renames what is left. Doing it
//        again after a crash while finishing is the same.
//   4. COMPLETE is deleted, then rewrite/, and <dir> fsynced.
//        Crash: rewrite/ may remain, empty or with only COMPLETE: finishing
//        removes it.
// Other files in <dir> (the LOCK file, an operator's notes) are not touched.
// Everything blocks: start-up only, with the data directory's lock held.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/log_writer.h"

namespace shardmq::store {

struct RewriteOptions {
  // Segment size of the new logs.
  uint64_t segment_bytes = 64 << 20;
  // Tests: behave as if the process died just before the filesystem step
  // with this index (0 = the first): return kAborted leaving the disk as it
  // is. -1: never.
  int crash_before_step = -1;
};

// Writes the new shard logs as described above and replaces the old shard
// directories with them. `fill(shard, writer)` appends shard `shard`'s state
// (0 <= shard < `shards`); the writer is inside a snapshot, and fill may call
// writer.Flush(0) to write as it goes (BlockingFileIo writes at once). Each
// new log's first sequence is the largest of `next_sequence_per_shard`, so
// sequence numbers keep increasing whichever old directory a record came
// from. An error (from fill, or the disk) leaves the old directories in
// place and removes rewrite/ unless COMPLETE was written (then the new state
// is committed and FinishInterruptedRewrite completes it).
absl::Status RewriteDataDir(const std::string& data_dir, int shards,
                            absl::FunctionRef<absl::Status(int shard, LogWriter& writer)> fill,
                            const std::vector<uint64_t>& next_sequence_per_shard,
                            const RewriteOptions& options = {});

// At start-up, before recovery: completes or undoes a rewrite a crash
// interrupted (see above). Returns a line for the start-up log, or "" when
// there was nothing to do.
absl::StatusOr<std::string> FinishInterruptedRewrite(const std::string& data_dir,
                                                     const RewriteOptions& options = {});

}  // namespace shardmq::store
