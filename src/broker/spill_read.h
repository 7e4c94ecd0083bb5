// Reading a message kept only in the log (--max-memory, spill.h) back from
// its segment file: checking that the bytes at the place recorded are the
// MESSAGE record expected, and rebuilding the message.
//
// The shard reads through its io_uring (BrokerShard::LoadSpilled) and hands
// the bytes to ParseSpilledRecord; start-up (recovery, a data-directory
// rewrite) may block and uses ReadSpilledRecord.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "broker/session_records.h"
#include "broker/session_recovery.h"

namespace shardmq::broker {

// `framed`: the `where.length` bytes read at `where.offset`. The MESSAGE
// record they hold (views into `framed`), or what is wrong: a short read, a
// bad checksum, another record type, another body number.
absl::StatusOr<SessionRecord> ParseSpilledRecord(absl::Span<const uint8_t> framed,
                                                 const SpillLocation& where);

// Blocking: reads `where` from <data_dir>/shard-<where.directory>/ and
// returns the framed record bytes, checked by ParseSpilledRecord.
absl::StatusOr<std::string> ReadSpilledRecord(const std::string& data_dir,
                                              const SpillLocation& where);

// The file name part: "<directory>/<segment file name>".
std::string SpilledSegmentPath(const std::string& log_directory, uint64_t segment);

}  // namespace shardmq::broker
