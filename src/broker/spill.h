// Messages kept only in the log (--max-memory, README "Durable state").
//
// Once the messages queued on a shard take more memory than its share of
// --max-memory, a new QoS 1/2 copy for an offline persistent session keeps
// no Message: its queue entry holds a SpilledBody, which says where the
// message's MESSAGE record is in the shard's log, and the message is read
// back (io_uring) when the client returns and the queue reaches it
// (BrokerShard::LoadSpilled). One SpilledBody is shared by the copies of one
// message; it pins the segment file that holds the record, so compaction
// keeps that segment (and those after it: LogWriter::KeepSegmentsFrom) until
// the last copy is delivered or dropped.
//
// A record appended this loop turn has no place in a file yet: the body is
// pending until the writer reports it (LogWriter::OnLocated), and a read
// waits for that. A snapshot is put off while any body is pending, since
// it must name where each spilled message is (MESSAGE AT).
//
// Thread: one SpillTable per shard, used only on that shard's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "broker/session_recovery.h"
#include "store/log_writer.h"

namespace shardmq::broker {

// What one queued message is charged against --max-memory: its bytes plus
// the bookkeeping around them (the Message object, the queue entry), about
// 160 bytes. Charged per copy, so a message queued for many sessions is
// counted many times: the budget errs on the side of memory.
inline constexpr size_t kQueuedEntryOverhead = 160;
inline size_t QueuedMemoryCharge(size_t topic_bytes, size_t payload_bytes) {
  return topic_bytes + payload_bytes + kQueuedEntryOverhead;
}

class SpillTable;

struct SpilledBody {
  SpilledBody(std::shared_ptr<SpillTable> table, uint64_t sequence)
      : table(std::move(table)), sequence(sequence) {}
  ~SpilledBody();
  SpilledBody(const SpilledBody&) = delete;
  SpilledBody& operator=(const SpilledBody&) = delete;

  std::shared_ptr<SpillTable> table;
  // The MESSAGE record's sequence in the log (while pending).
  uint64_t sequence = 0;
  // Set once the record has a place: segment, offset, framed length and the
  // body number the record carries (checked when it is read back).
  bool located = false;
  SpillLocation where;
};

class SpillTable {
 public:
  explicit SpillTable(store::LogWriter* log) : log_(log) {}

  // A body for the record appended with `sequence`. `where` has its length
  // and body number, and its segment and offset if `located` (the writer
  // already said where it went); else it is pending until Located.
  std::shared_ptr<SpilledBody> Make(std::shared_ptr<SpillTable> self, uint64_t sequence,
                                    const SpillLocation& where, bool located) {
    auto body = std::make_shared<SpilledBody>(std::move(self), sequence);
    body->where = where;
    if (located) {
      Locate(*body, where);
    } else {
      pending_[sequence] = body.get();
    }
    return body;
  }
  // A body recovered at start-up (its place is known).
  std::shared_ptr<SpilledBody> MakeLocated(std::shared_ptr<SpillTable> self,
                                           const SpillLocation& where) {
    auto body = std::make_shared<SpilledBody>(std::move(self), 0);
    Locate(*body, where);
    return body;
  }
  // LogWriter::OnLocated: a pending body learns its place.
  void Located(uint64_t sequence, uint64_t segment, uint64_t offset) {
    auto it = pending_.find(sequence);
    if (it == pending_.end()) return;
    SpilledBody* body = it->second;
    pending_.erase(it);
    SpillLocation where = body->where;
    where.segment = segment;
    where.offset = offset;
    Locate(*body, where);
  }
  // The writer is going away before the bodies (shard shutdown).
  void Detach() { log_ = nullptr; }
  bool any_pending() const { return !pending_.empty(); }
  // Copies currently kept only in the log (a gauge).
  size_t copies = 0;

 private:
  friend struct SpilledBody;
  void Locate(SpilledBody& body, const SpillLocation& where) {
    body.located = true;
    body.where = where;
    if (++pins_[where.segment] == 1) UpdateFloor();
  }
  void Release(SpilledBody& body) {
    if (!body.located) {
      pending_.erase(body.sequence);
      return;
    }
    auto it = pins_.find(body.where.segment);
    if (it != pins_.end() && --it->second == 0) {
      pins_.erase(it);
      UpdateFloor();
    }
  }
  void UpdateFloor() {
    if (log_ != nullptr) log_->KeepSegmentsFrom(pins_.empty() ? UINT64_MAX : pins_.begin()->first);
  }

  store::LogWriter* log_;
  // Segment (first sequence) -> bodies located in it.
  absl::btree_map<uint64_t, size_t> pins_;
  absl::flat_hash_map<uint64_t, SpilledBody*> pending_;
};

inline SpilledBody::~SpilledBody() { table->Release(*this); }

}  // namespace shardmq::broker
