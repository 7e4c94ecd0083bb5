#include "broker/retained_recovery.h"

#include <charconv>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
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

absl::StatusOr<StoreRecovery> RecoverStore(const std::string& data_dir, int shards,
                                           int64_t now_wall_ns, bool salvage) {
  StoreRecovery result;
  result.next_sequence.assign(static_cast<size_t>(shards), 0);
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
  for (const auto& entry : directories) {
    // Named, not a structured binding: C++20 lambdas cannot capture those
    // (clang refuses; gcc allows it as an extension).
    const int shard = entry.first;
    const std::string& directory = entry.second;
    absl::StatusOr<store::RecoveryReport> report = store::RecoverSegments(
        directory, {.salvage = salvage},
        [&](const store::Record& record, uint64_t sequence) -> absl::Status {
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
          merge.Add(*decoded, sequence);
          return absl::OkStatus();
        });
    if (!report.ok()) return report.status();
    ++result.directories;
    result.records += report->records;
    result.bytes += report->bytes;
    if (shard < shards) result.next_sequence[static_cast<size_t>(shard)] = report->next_sequence;
    for (const std::string& skipped : report->salvaged) {
      result.notes.push_back("salvage skipped " + skipped);
    }
    if (report->truncated_bytes > 0) {
      result.notes.push_back(absl::StrFormat("cut a torn tail of %d bytes off %s",
                                             report->truncated_bytes, report->truncated_file));
    }
  }
  result.newest_stamp_ns = merge.newest_stamp();
  result.retained = merge.Take(now_wall_ns, &result.expired);
  return result;
}

std::vector<MessageRef> RetainedMessages(const std::vector<RecoveredRetained>& recovered,
                                         int64_t now_wall_ns, shard::Clock::time_point now) {
  std::vector<MessageRef> out;
  out.reserve(recovered.size());
  for (const RecoveredRetained& r : recovered) {
    RetainedRecord view;
    view.topic = r.topic;
    view.properties = absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(r.properties.data()),
                                          r.properties.size());
    // Checked when the record was written; a failure here would be a bug,
    // and the message is kept without its properties rather than lost.
    mqtt::Properties properties = DecodeRetainedProperties(view).value_or(mqtt::Properties{});
    if (r.expires_at_ns) {
      // Whole seconds left, rounded up as Message does.
      const int64_t left_ns = *r.expires_at_ns - now_wall_ns;
      properties.message_expiry_interval = static_cast<uint32_t>(
          std::min<int64_t>((left_ns + 999'999'999) / 1'000'000'000, UINT32_MAX));
    }
    Message::Fields fields;
    fields.topic = r.topic;
    fields.payload =
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(r.payload.data()), r.payload.size());
    fields.qos = r.qos;
    fields.retain = true;
    fields.properties = &properties;
    out.push_back(MessageRef::Adopt(Message::Make(fields, now)));
  }
  return out;
}

}  // namespace shardmq::broker
