#include "broker/retained_recovery.h"

#include <charconv>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "broker/client_id.h"
#include "broker/record_codec.h"
#include "broker/spill_read.h"
#include "store/segment_recovery.h"

namespace shardmq::broker {
namespace {

std::string ToString(absl::Span<const uint8_t> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// "shard-12" -> 12; -1 for anything else.
int ShardOfDirectory(const std::string& name) {
  if (!absl::StartsWith(name, "shard-")) return -1;
  int shard = -1;
  const char* begin = name.data() + 6;
  const char* end = name.data() + name.size();
  auto [ptr, error] = std::from_chars(begin, end, shard);
  if (error != std::errc() || ptr != end || begin == end) return -1;
  return shard;
}

}  // namespace

int64_t WallNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void RetainedMerge::Add(const RetainedRecord& record, uint64_t sequence) {
  newest_stamp_ = std::max(newest_stamp_, record.stamp_ns);
  auto [it, inserted] =
      newest_.try_emplace(absl::string_view(record.topic.data(), record.topic.size()));
  Entry& entry = it->second;
  if (!inserted && (entry.message.stamp_ns > record.stamp_ns ||
                    (entry.message.stamp_ns == record.stamp_ns && entry.sequence > sequence))) {
    return;  // an older record (another shard's, or an earlier run's)
  }
  entry.sequence = sequence;
  entry.clear = record.clear;
  RecoveredRetained& m = entry.message;
  m.stamp_ns = record.stamp_ns;
  m.qos = record.qos;
  m.expires_at_ns = record.expires_at_ns;
  if (record.clear) {
    m.properties.clear();
    m.payload.clear();
    return;
  }
  m.topic = std::string(record.topic);
  m.properties = ToString(record.properties);
  m.payload = ToString(record.payload);
}

std::vector<RecoveredRetained> RetainedMerge::Take(int64_t now_wall_ns, size_t* expired) {
  std::vector<RecoveredRetained> out;
  out.reserve(newest_.size());
  for (auto& [topic, entry] : newest_) {
    if (entry.clear) continue;
    if (entry.message.expires_at_ns && *entry.message.expires_at_ns <= now_wall_ns) {
      if (expired != nullptr) ++*expired;
      continue;
    }
    out.push_back(std::move(entry.message));
  }
  newest_.clear();
  return out;
}

// A message left in the log that was sent before the log ended (a
// snapshot named it, then its client came back and got it) is resent at
// once with its packet id: read it now. In-flight windows bound how many.
static void LoadSpilledInflight(const std::string& data_dir, int64_t now_wall_ns,
                                shard::Clock::time_point now, StoreRecovery& result) {
  for (RecoveredSession& session : result.sessions) {
    for (auto it = session.items.begin(); it != session.items.end();) {
      if (!it->spilled || it->packet_id == 0) {
        ++it;
        continue;
      }
      absl::StatusOr<std::string> bytes = ReadSpilledRecord(data_dir, *it->spilled);
      MessageRef message;
      if (bytes.ok()) {
        absl::StatusOr<SessionRecord> record =
            ParseSpilledRecord(records::AsBytes(*bytes), *it->spilled);
        if (record.ok())
          message = RebuildMessage(record->message, now_wall_ns, now, record->commit);
        if (!message) ++result.messages_expired;
      } else {
        result.notes.push_back(absl::StrFormat("message %d in flight to %s is lost: %s", it->number,
                                               session.client_id, bytes.status().message()));
      }
      if (!message) {
        session.dropped_items.push_back(it->number);
        it = session.items.erase(it);
        continue;
      }
      it->message = std::move(message);
      it->spilled.reset();
      --result.spilled;
      ++it;
    }
  }
}

absl::StatusOr<StoreRecovery> RecoverStore(const std::string& data_dir, int shards,
                                           int64_t now_wall_ns, bool salvage,
                                           uint64_t spill_budget) {
  StoreRecovery result;
  result.next_sequence.assign(static_cast<size_t>(shards), 0);
  result.bytes_since_snapshot.assign(static_cast<size_t>(shards), 0);
  result.last_snapshot_bytes.assign(static_cast<size_t>(shards), 0);
  std::error_code error;
  if (!std::filesystem::exists(data_dir, error)) return result;
  std::vector<std::pair<int, std::string>> directories;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir, error)) {
    const int shard = ShardOfDirectory(entry.path().filename().string());
    std::error_code not_a_directory;
    if (shard >= 0 && entry.is_directory(not_a_directory)) {
      directories.emplace_back(shard, entry.path().string());
    }
  }
  if (error) {
    return absl::UnavailableError(
        absl::StrFormat("cannot read data directory %s: %s", data_dir, error.message()));
  }
  std::sort(directories.begin(), directories.end());
  RetainedMerge merge;
  const shard::Clock::time_point now = shard::Clock::now();
  absl::flat_hash_map<std::string, int> seen;  // client id -> directory
  for (const auto& entry : directories) {
    // Named, not a structured binding: C++20 lambdas cannot capture those
    // (clang refuses; gcc allows it as an extension).
    const int shard = entry.first;
    const std::string& directory = entry.second;
    if (shard >= shards) result.misplaced = true;
    SessionReplay sessions(salvage);
    store::RecoveryOptions recovery_options;
    recovery_options.salvage = salvage;
    // A snapshot's MESSAGE AT records name older segments: those stay.
    recovery_options.keep_segments_from = [&sessions] {
      return sessions.oldest_referenced_segment();
    };
    absl::StatusOr<store::RecoveryReport> report = store::RecoverSegments(
        directory, recovery_options,
        [&](const store::Record& record, uint64_t sequence) -> absl::Status {
          if (IsSessionRecord(record.type)) {
            const SpillLocation where{
                .directory = shard,
                .segment = record.segment,
                .offset = record.offset,
                .length = static_cast<uint32_t>(store::FramedSize(record.payload.size()))};
            absl::Status applied = sessions.Apply(record.type, record.payload, where);
            if (!applied.ok()) {
              return absl::DataLossError(absl::StrFormat("%s: offset %d: %s", directory,
                                                         record.offset, applied.message()));
            }
            return absl::OkStatus();
          }
          if (record.type != kRecordRetainSet && record.type != kRecordRetainClear) {
            return absl::DataLossError(absl::StrFormat(
                "%s: offset %d: unknown record type %d (written by a newer shardmq?)", directory,
                record.offset, record.type));
          }
          absl::StatusOr<RetainedRecord> decoded = DecodeRetained(record.type, record.payload);
          if (!decoded.ok()) {
            return absl::DataLossError(absl::StrFormat("%s: offset %d: %s", directory,
                                                       record.offset, decoded.status().message()));
          }
          if (RetainedOwner(decoded->topic, shards) != shard) result.misplaced = true;
          merge.Add(*decoded, sequence);
          return absl::OkStatus();
        });
    if (!report.ok()) return report.status();
    if (sessions.salvage_skipped() > 0) {
      result.notes.push_back(absl::StrFormat(
          "salvage: %s: %d queued messages whose message record the damage took are dropped",
          directory, sessions.salvage_skipped()));
      result.salvaged = true;
    }
    SessionReplay::Counts counts;
    for (RecoveredSession& session :
         sessions.Take(now_wall_ns, now, counts, static_cast<size_t>(spill_budget))) {
      if (HomeShard(session.client_id, shards) != shard) result.misplaced = true;
      auto [it, inserted] = seen.emplace(session.client_id, shard);
      if (!inserted) {
        // Only an interrupted rewrite could leave one session in two
        // directories, and the rewrite protocol rules that out; keep the
        // first and say so rather than guess.
        result.notes.push_back(
            absl::StrFormat("session %s is in shard-%d and shard-%d; kept the first",
                            session.client_id, it->second, shard));
        continue;
      }
      result.sessions.push_back(std::move(session));
    }
    result.sessions_expired += counts.sessions_expired;
    result.messages_expired += counts.messages_expired;
    result.spilled += sessions.spilled();
    result.next_number = std::max(result.next_number, sessions.max_number() + 1);
    ++result.directories;
    result.records += report->records;
    result.bytes += report->bytes;
    if (shard < shards) {
      const auto i = static_cast<size_t>(shard);
      result.next_sequence[i] = report->next_sequence;
      result.bytes_since_snapshot[i] = report->bytes - report->snapshot_bytes;
      result.last_snapshot_bytes[i] = report->snapshot_bytes;
    }
    result.max_next_sequence = std::max(result.max_next_sequence, report->next_sequence);
    for (const std::string& skipped : report->salvaged) {
      result.notes.push_back("salvage skipped " + skipped);
      result.salvaged = true;
    }
    for (const std::string& deleted : report->deleted) {
      result.notes.push_back("deleted " + deleted + " (before the newest complete snapshot)");
    }
    if (report->truncated_bytes > 0) {
      result.notes.push_back(absl::StrFormat("cut a torn tail of %d bytes off %s",
                                             report->truncated_bytes, report->truncated_file));
    }
  }
  LoadSpilledInflight(data_dir, now_wall_ns, now, result);
  // Copies of QoS 2 messages their publisher never committed (a crash came
  // between the copies and the commit): the publisher sends them again.
  result.uncommitted = DropUncommitted(result.sessions);
  result.newest_stamp_ns = merge.newest_stamp();
  result.retained = merge.Take(now_wall_ns, &result.expired);
  return result;
}

std::vector<MessageRef> RetainedMessages(const std::vector<RecoveredRetained>& recovered,
                                         int64_t now_wall_ns, shard::Clock::time_point now) {
  std::vector<MessageRef> out;
  out.reserve(recovered.size());
  for (const RecoveredRetained& r : recovered) {
    MessageRecord record;
    record.topic = r.topic;
    record.qos = r.qos;
    record.retain = true;
    record.expires_at_ns = r.expires_at_ns;
    record.properties = records::AsBytes(r.properties);
    record.payload = records::AsBytes(r.payload);
    // Take dropped the expired ones; one whose last second ran out since is
    // gone too.
    if (MessageRef message = RebuildMessage(record, now_wall_ns, now)) {
      out.push_back(std::move(message));
    }
  }
  return out;
}

}  // namespace shardmq::broker
