// Start-up recovery of the retained messages from every shard's log.
//
// Runs on the thread calling Broker::Start, before any shard serves. Every
// shard directory under the data directory is read, whatever the shard count
// was when it was written (shard-N for any N), and for each topic the newest
// record wins (largest stamp, then sequence: retained_records.h); a CLEAR
// winning, or an expiry already past, leaves the topic without a retained
// message. Damage stops start-up with the file and offset
// (store::RecoverSegments words it); a torn tail is cut and reported.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "broker/message.h"
#include "broker/retained_records.h"
#include "broker/session_recovery.h"

namespace shardmq::broker {

// One retained message as recovered, owning its bytes.
struct RecoveredRetained {
  std::string topic;
  uint8_t qos = 0;
  std::optional<int64_t> expires_at_ns;  // wall clock
  std::string properties;                // property block body
  std::string payload;
  int64_t stamp_ns = 0;
};

// Keeps the newest record of each topic, fed in any order.
class RetainedMerge {
 public:
  void Add(const RetainedRecord& record, uint64_t sequence);
  // The retained set: topics whose newest record sets a message that has not
  // expired at `now_wall_ns`. `expired` counts the ones dropped for expiry.
  std::vector<RecoveredRetained> Take(int64_t now_wall_ns, size_t* expired = nullptr);
  // The largest stamp seen (0: none): new stamps start above it.
  int64_t newest_stamp() const { return newest_stamp_; }

 private:
  struct Entry {
    uint64_t sequence = 0;
    bool clear = false;
    RecoveredRetained message;
  };
  absl::flat_hash_map<std::string, Entry> newest_;
  int64_t newest_stamp_ = 0;
};

struct StoreRecovery {
  // Per shard of this run: the sequence its log continues with, and the
  // compaction accounting its writer starts from (LogWriter::Options).
  std::vector<uint64_t> next_sequence;
  std::vector<uint64_t> bytes_since_snapshot;
  std::vector<uint64_t> last_snapshot_bytes;
  // The largest next sequence of any directory, this run's or not.
  uint64_t max_next_sequence = 0;
  // Salvage skipped damage: the directory should be rewritten without it.
  bool salvaged = false;
  std::vector<RecoveredRetained> retained;
  int64_t newest_stamp_ns = 0;
  size_t directories = 0;
  size_t records = 0;
  uint64_t bytes = 0;
  size_t expired = 0;
  // Persistent sessions (session_recovery.h), whatever their home shard now.
  std::vector<RecoveredSession> sessions;
  size_t sessions_expired = 0;
  size_t messages_expired = 0;
  // Copies of QoS 2 messages dropped because their publisher never
  // committed them (session_recovery.h, DropUncommitted).
  size_t uncommitted = 0;
  // Queued messages left in the log beyond the memory budget.
  size_t spilled = 0;
  // New MESSAGE and QUEUED numbers start here on every shard.
  uint64_t next_number = 1;
  // State sits in a directory that no longer owns it: the shard count
  // changed since it was written (or a directory beyond the count is left).
  // Start-up then rewrites the data directory (store/data_dir_rewrite.h).
  bool misplaced = false;
  // What was repaired (torn tails cut), for the start-up log.
  std::vector<std::string> notes;
};

// Reads <data_dir>/shard-*/ (a missing data_dir is an empty store): the
// retained set and the persistent sessions.
// `salvage`: store::RecoveryOptions::salvage.
// `spill_budget`: --max-memory's share of one shard (0: none); queued
// messages beyond it stay in the log (SessionReplay::Take).
absl::StatusOr<StoreRecovery> RecoverStore(const std::string& data_dir, int shards,
                                           int64_t now_wall_ns, bool salvage = false,
                                           uint64_t spill_budget = 0);

// The recovered messages as Messages for the retained index, with what is
// left of their Message Expiry Interval.
std::vector<MessageRef> RetainedMessages(const std::vector<RecoveredRetained>& recovered,
                                         int64_t now_wall_ns, shard::Clock::time_point now);

// Wall-clock nanoseconds (CLOCK_REALTIME).
int64_t WallNowNs();

}  // namespace shardmq::broker
