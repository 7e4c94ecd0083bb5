// Small value types shared by the shard runtime and the layer above it:
// connection ids, mail items, close reasons, peer addresses, timer ids and the
// intrusive reference count used to share immutable send buffers across shards.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"

namespace shardmq::shard {

// Identifies a connection within its shard. `index` is the slot in the shard's
// connection slab; `generation` changes every time the slot is reused, so an id
// kept after the connection died is detected as stale (every Shard call taking
// a ConnId returns false / does nothing for a stale id). Ids are meaningful
// only on the shard that issued them.
struct ConnId {
  uint32_t index = UINT32_MAX;
  uint32_t generation = 0;

  bool valid() const { return index != UINT32_MAX; }
  uint64_t Pack() const { return (uint64_t{generation} << 32) | index; }
  static ConnId Unpack(uint64_t v) {
    return ConnId{static_cast<uint32_t>(v), static_cast<uint32_t>(v >> 32)};
  }
  friend bool operator==(ConnId a, ConnId b) = default;
  template <typename H>
  friend H AbslHashValue(H h, ConnId c) {
    return H::combine(std::move(h), c.Pack());
  }
};

// Why a connection ended; passed to ShardHandler::OnClosed.
enum class CloseReason : uint8_t {
  kPeerClosed,  // orderly EOF from the peer
  kError,       // recv/send error (reset, broken pipe, ...)
  kClosedByUs,  // Shard::Close(): queued output was flushed, then closed
  kAborted,     // Shard::Abort(): closed without flushing
  kHandedOff,   // Shard::HandOff(): the connection lives on another shard now
  kShutdown,    // ShardGroup::Stop(): flushed (bounded time) and closed
};
const char* CloseReasonName(CloseReason reason);

// The peer address of an accepted connection.
struct PeerInfo {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  int listener_index = -1;  // index into ShardGroup::Options::listeners
  // "1.2.3.4:5678", "[::1]:5678", or "unix" (a unix-socket client has no name).
  std::string ToString() const;
};

// One cross-shard message, copied by value through a mailbox. The runtime does
// not interpret `ptr`/`arg` for handler kinds; ownership of whatever `ptr`
// points at is the handler's business (free it on the shard that made it, or
// rely on mimalloc's cross-thread free).
struct MailItem {
  uint32_t kind = 0;
  uint32_t aux = 0;
  void* ptr = nullptr;
  uint64_t arg = 0;
};
// Kinds >= kMailKindReservedBase belong to the runtime (hand-off, wake), and
// the runtime marks bulk items with bit 30 while they wait in an overflow
// queue (Shard::PostBulk): a handler's kinds are below 0x40000000, and
// Shard::Post() rejects others with a CHECK failure.
inline constexpr uint32_t kMailKindReservedBase = 0xFFFF0000u;

// A cancellable timer; 0 is never a valid id.
struct TimerId {
  uint64_t value = 0;
  bool valid() const { return value != 0; }
  friend bool operator==(TimerId a, TimerId b) = default;
};

namespace internal {
// The id of the shard whose loop runs on this thread; -1 on any other thread.
// Set by Shard::Run() for the duration of the loop.
inline thread_local int tls_shard_id = -1;
}  // namespace internal

// Intrusive, thread-safe reference count for immutable memory shared by many
// sends (e.g. one MQTT payload fanned out to subscribers on several shards).
// Starts at 1 (owned by the creator). Shard::SendShared() takes its own
// reference and drops it exactly once when the kernel no longer needs the
// bytes (send completed, or the connection died).
//
// Where the object is freed: an object remembers the shard whose thread
// constructed it (its owner). When the last reference is dropped on another
// shard's running loop, the object is not deleted there: it goes into that
// shard's return batch for the owner, which travels through the mailbox at the
// end of the loop turn and is deleted by the owner. That turns one cross-thread
// free per message (an atomic on the owner's heap page plus a later collection
// pass) into a local free on the owner and one mailbox slot per batch. On any
// other thread (tests, Join(), after the loop ended) the last Unref() deletes
// at once.
class RefCounted {
 public:
  RefCounted() : owner_(static_cast<int16_t>(internal::tls_shard_id)) {}
  RefCounted(const RefCounted&) = delete;
  RefCounted& operator=(const RefCounted&) = delete;

  void Ref() const { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() const {
    // A count of 1 is our own reference: nobody else can add one (that takes
    // a reference), so the last owner skips the atomic read-modify-write,
    // which was most of Route's time for a message delivered on its own
    // shard. acquire/acq_rel: every other owner's use of the object
    // happens-before the delete.
    if (refs_.load(std::memory_order_acquire) == 1 ||
        refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      DropLast();
    }
  }
  uint32_t RefCountForTesting() const { return refs_.load(std::memory_order_relaxed); }
  // Whether the caller's reference is the only one. Acquire: every other
  // owner's use of the object happens-before whatever the caller does next
  // (say, reuse its memory).
  bool IsSoleOwner() const { return refs_.load(std::memory_order_acquire) == 1; }
  // The shard that constructed the object, or -1.
  int owner_shard() const { return owner_; }

 protected:
  virtual ~RefCounted() = default;

 private:
  friend class Shard;
  // Deletes, or hands the object to the current shard's return batch for its
  // owner (defined in reactor.cc).
  void DropLast() const;

  mutable std::atomic<uint32_t> refs_{1};
  const int16_t owner_;
};

// The simplest RefCounted: an owned, immutable byte vector.
class SharedBytes final : public RefCounted {
 public:
  explicit SharedBytes(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {}
  absl::Span<const uint8_t> span() const { return bytes_; }

 private:
  ~SharedBytes() override = default;
  std::vector<uint8_t> bytes_;
};

}  // namespace shardmq::shard
