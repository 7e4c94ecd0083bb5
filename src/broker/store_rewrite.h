// Rewriting the data directory from recovered state at start-up
// (store/data_dir_rewrite.h does it crash-safely; this decides what each new
// shard's log holds). Used when state sits in a directory that no longer
// owns it, because the shard count changed since it was written, and after
// a salvage, so the damage is gone from later starts.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "broker/retained_recovery.h"

namespace shardmq::broker {

// Writes for each of `shards` shards one snapshot: the retained messages it
// owns (RetainedOwner) with their stamps, and the sessions whose home it is
// (HomeShard) with everything recovery rebuilt for them, renumbered.
absl::Status RewriteStore(const std::string& data_dir, int shards, const StoreRecovery& recovered,
                          int64_t now_wall_ns);

}  // namespace shardmq::broker
