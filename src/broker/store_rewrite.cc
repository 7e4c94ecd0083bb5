#include "broker/store_rewrite.h"

#include "absl/container/flat_hash_map.h"
#include "broker/client_id.h"
#include "broker/record_codec.h"
#include "broker/session_records.h"
#include "broker/spill_read.h"
#include "store/data_dir_rewrite.h"
#include "store/log_format.h"

namespace shardmq::broker {
namespace {

// Appends records for one new shard's log.
class ShardFiller {
 public:
  ShardFiller(store::LogWriter& writer, uint64_t& next_number, int64_t now_wall_ns,
              const std::string& data_dir)
      : writer_(writer),
        next_number_(next_number),
        now_wall_ns_(now_wall_ns),
        data_dir_(data_dir) {}

  void Retained(const RecoveredRetained& r) {
    mqtt::Properties properties =
        records::DecodePropertiesBody(records::AsBytes(r.properties)).value_or(mqtt::Properties{});
    scratch_.clear();
    EncodeRetainSet(r.stamp_ns, r.topic, r.qos, r.expires_at_ns,
                    r.properties.empty() ? nullptr : &properties, records::AsBytes(r.payload),
                    scratch_);
    Append(kRecordRetainSet);
  }

  absl::Status Session(const RecoveredSession& s) {
    scratch_.clear();
    EncodeSessionPut(s.client_id, s.expiry_interval, s.protocol_version, s.username, s.commit_mark,
                     scratch_);
    Append(kRecordSessionPut);
    if (s.offline_since_ns) {
      scratch_.clear();
      EncodeSessionOffline(s.client_id, *s.offline_since_ns, s.expiry_interval, scratch_);
      Append(kRecordSessionOffline);
    }
    if (s.will) {
      mqtt::Properties properties =
          records::DecodePropertiesBody(records::AsBytes(s.will->properties))
              .value_or(mqtt::Properties{});
      scratch_.clear();
      EncodeWill(s.client_id, s.will->due_wall_ns, s.will->topic, s.will->qos, s.will->retain,
                 std::nullopt, s.will->properties.empty() ? nullptr : &properties,
                 records::AsBytes(s.will->payload), scratch_);
      Append(kRecordWill);
    }
    for (const auto& [filter, options] : s.subscriptions) {
      scratch_.clear();
      EncodeSubscribe(s.client_id, filter, options, scratch_);
      Append(kRecordSubscribe);
    }
    for (const RecoveredItem& item : s.items) {
      uint64_t body = 0;
      if (item.spilled) {
        // Kept only in the old log: copied into the new one (the old
        // directory goes when the rewrite commits).
        absl::StatusOr<uint64_t> copied = CopySpilled(*item.spilled);
        if (!copied.ok()) return copied.status();
        body = *copied;
      } else {
        body = Body(item.message);
      }
      const uint64_t number = next_number_++;
      scratch_.clear();
      EncodeQueued(number, body, s.client_id, item.qos, item.retain, item.shared_group,
                   item.subscription_ids, scratch_);
      Append(kRecordQueued);
      if (item.packet_id != 0) {
        scratch_.clear();
        EncodeSent(number, item.packet_id, scratch_);
        Append(kRecordSent);
      }
      if (item.released) {
        scratch_.clear();
        EncodeItemOnly(number, scratch_);
        Append(kRecordReleased);
      }
    }
    for (uint16_t packet_id : s.inbound_qos2) {
      scratch_.clear();
      EncodeInboundQos2(s.client_id, packet_id, true, 0, scratch_);
      Append(kRecordInboundQos2);
    }
    return absl::OkStatus();
  }

 private:
  // The MESSAGE record at `where` in the old log, appended with a new body
  // number (its first field); its number in the new log.
  absl::StatusOr<uint64_t> CopySpilled(const SpillLocation& where) {
    absl::StatusOr<std::string> framed = ReadSpilledRecord(data_dir_, where);
    if (!framed.ok()) return framed.status();
    const uint64_t number = next_number_++;
    scratch_.assign(framed->substr(store::kRecordHeaderSize + 1));
    std::string field;
    records::PutU64(number, field);
    scratch_.replace(0, field.size(), field);
    Append(kRecordMessage);
    return number;
  }

  // The MESSAGE record number of `message`, logging it the first time; a
  // released QoS 2 item has none and gets an empty body.
  uint64_t Body(const MessageRef& message) {
    auto [it, inserted] = bodies_.try_emplace(message.get(), 0);
    if (!inserted) return it->second;
    it->second = next_number_++;
    scratch_.clear();
    if (!message) {
      EncodeMessage(it->second, 0, "", "", 2, false, std::nullopt, nullptr, {}, scratch_);
    } else {
      std::optional<int64_t> expires_at;
      if (message->has_expiry()) {
        expires_at = now_wall_ns_ +
                     int64_t{message->RemainingExpirySeconds(shard::Clock::now())} * 1'000'000'000;
      }
      EncodeMessage(it->second, message->origin(), message->topic(), message->publisher(),
                    message->qos(), message->retain(), expires_at, message->properties(),
                    message->payload(), scratch_);
    }
    Append(kRecordMessage);
    return it->second;
  }

  void Append(uint8_t type) {
    writer_.Append(type, records::AsBytes(scratch_));
    // Written as it goes (BlockingFileIo writes at once): a million retained
    // messages need not sit in memory twice.
    if (writer_.pending_bytes() > (4u << 20)) writer_.Flush(0);
  }

  store::LogWriter& writer_;
  uint64_t& next_number_;
  int64_t now_wall_ns_;
  const std::string& data_dir_;
  std::string scratch_;
  absl::flat_hash_map<const Message*, uint64_t> bodies_;
};

}  // namespace

absl::Status RewriteStore(const std::string& data_dir, int shards, const StoreRecovery& recovered,
                          int64_t now_wall_ns) {
  uint64_t next_number = recovered.next_number;
  std::vector<uint64_t> next_sequences = recovered.next_sequence;
  next_sequences.push_back(recovered.max_next_sequence);
  return store::RewriteDataDir(
      data_dir, shards,
      [&](int shard, store::LogWriter& writer) -> absl::Status {
        ShardFiller filler(writer, next_number, now_wall_ns, data_dir);
        for (const RecoveredRetained& r : recovered.retained) {
          if (RetainedOwner(r.topic, shards) == shard) filler.Retained(r);
        }
        for (const RecoveredSession& s : recovered.sessions) {
          if (HomeShard(s.client_id, shards) != shard) continue;
          if (absl::Status filled = filler.Session(s); !filled.ok()) return filled;
        }
        return absl::OkStatus();
      },
      next_sequences);
}

}  // namespace shardmq::broker
