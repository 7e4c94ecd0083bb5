// Bounded, lock-free single-producer/single-consumer ring: the shard mailbox.
//
// One SpscRing exists per ordered pair of shards (source -> target). Exactly
// one thread pushes (the source shard) and exactly one thread pops (the target
// shard). Both sides work in batches:
//
//   producer:  ring.TryPush(a); ring.TryPush(b); ...; ring.Publish();
//   consumer:  ring.Drain(64, [&](const T& item) { ... });
//
// TryPush() writes into a slot and advances a producer-private tail; nothing is
// visible to the consumer until Publish() stores the tail once for the whole
// batch. Drain() reads up to `max` items and releases their slots with one store
// of the head. Each side keeps a cached copy of the other side's index and only
// reloads it (touching the other side's cache line) when the cache says the ring
// looks full (producer) or empty (consumer).
//
// Byte cost: 3 cache lines of bookkeeping + capacity * sizeof(T).
// T must be trivially copyable (it is copied by value through the slots).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>

#include "base/check.h"

namespace shardmq::shard {

inline constexpr size_t kCacheLineSize = 64;

template <typename T>
class SpscRing {
  static_assert(std::is_trivially_copyable_v<T>, "SpscRing items are copied by value");

 public:
  // `capacity` is rounded up to a power of two (at least 2).
  explicit SpscRing(size_t capacity) {
    size_t cap = 2;
    while (cap < capacity) cap <<= 1;
    mask_ = cap - 1;
    slots_ = std::make_unique<T[]>(cap);
  }
  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  size_t capacity() const { return mask_ + 1; }

  // ---- Producer thread only ------------------------------------------------

  // Stages one item. Returns false when the ring is full (counting items staged
  // but not yet published). The item is invisible to the consumer until
  // Publish().
  bool TryPush(const T& item) {
    return TryEmplace([&](T& slot) { slot = item; });
  }
  // TryPush() that lets fill(T&) write the slot in place: field by field from
  // registers, where a copy of an item the caller just stored field by field
  // would reload it with one wide load that waits on store forwarding. With
  // `limit`, the ring counts as full once it holds that many items.
  template <typename Fill>
  bool TryEmplace(Fill&& fill, uint64_t limit = UINT64_MAX) {
    const uint64_t room = limit < mask_ + 1 ? limit : mask_ + 1;
    const uint64_t tail = priv_.staged_tail;
    if (tail - priv_.head_cache >= room) {
      // Looks full: refresh the cached head. Acquire pairs with the consumer's
      // release store of head_ in Drain(): once we see the new head, the
      // consumer has finished reading those slots, so overwriting them is safe.
      priv_.head_cache = cons_.head.load(std::memory_order_acquire);
      if (tail - priv_.head_cache >= room) return false;
    }
    // The slots a few pushes ahead were last read by the consumer's core:
    // start fetching them for writing now so the store below rarely waits.
    __builtin_prefetch(&slots_[(tail + kPrefetchAhead) & mask_], 1);
    fill(slots_[tail & mask_]);
    priv_.staged_tail = tail + 1;
    return true;
  }

  // Makes every staged item visible to the consumer. Release: the slot writes
  // made by TryPush() happen-before any consumer that acquires this tail value.
  // Returns the number of items published by this call.
  size_t Publish() {
    const uint64_t published = prod_.tail.load(std::memory_order_relaxed);  // own variable
    if (published == priv_.staged_tail) return 0;
    prod_.tail.store(priv_.staged_tail, std::memory_order_release);
    return priv_.staged_tail - published;
  }

  // Number of items staged by TryPush() and not yet published.
  size_t StagedCount() const {
    return priv_.staged_tail - prod_.tail.load(std::memory_order_relaxed);
  }

  // ---- Consumer thread only ------------------------------------------------

  // Calls fn(const T&) for up to `max` published items in FIFO order, then
  // releases their slots with a single store. Returns the number consumed.
  template <typename Fn>
  size_t Drain(size_t max, Fn&& fn) {
    return Drain(max, fn, [](const T&) {});
  }
  // The same, and calls ahead(item) for the item kPrefetchAhead places
  // further on before fn(item) (e.g. to prefetch what the item points to).
  template <typename Fn, typename Ahead>
  size_t Drain(size_t max, Fn&& fn, Ahead&& ahead) {
    uint64_t head = cons_.head.load(std::memory_order_relaxed);  // own variable
    if (cons_.tail_cache == head) {
      // Looks empty: refresh. Acquire pairs with the producer's release in
      // Publish(), making the slot contents written before it visible here.
      cons_.tail_cache = prod_.tail.load(std::memory_order_acquire);
      if (cons_.tail_cache == head) return 0;
    }
    uint64_t avail = cons_.tail_cache - head;
    if (avail > max) avail = max;
    for (uint64_t i = 0; i < avail && i < kPrefetchAhead; ++i) ahead(slots_[(head + i) & mask_]);
    for (uint64_t i = 0; i < avail; ++i) {
      if (i + kPrefetchAhead < avail) ahead(slots_[(head + i + kPrefetchAhead) & mask_]);
      fn(slots_[(head + i) & mask_]);
    }
    // Release: our reads of the slots happen-before the producer reuses them
    // (it acquires head_ in TryPush()).
    cons_.head.store(head + avail, std::memory_order_release);
    return avail;
  }

  // ---- Any thread ----------------------------------------------------------

  // True if at least one published item has not been consumed yet. Used by the
  // consumer's going-to-sleep re-check (after a seq_cst fence) and by tests.
  bool HasPublished() const {
    return prod_.tail.load(std::memory_order_acquire) != cons_.head.load(std::memory_order_acquire);
  }

 private:
  static constexpr uint64_t kPrefetchAhead = 8;

  // Producer-owned line: the published tail, read by the consumer. Written
  // once per Publish(), so the consumer's reads cost the producer one miss per
  // batch.
  struct alignas(kCacheLineSize) ProducerSide {
    std::atomic<uint64_t> tail{0};
  };
  // The producer's private staged tail and cached consumer head, written on
  // every push: on their own line so the consumer reading `tail` does not
  // steal it from the producer mid-batch.
  struct alignas(kCacheLineSize) ProducerPrivate {
    uint64_t staged_tail = 0;
    uint64_t head_cache = 0;
  };
  // Consumer-owned line: the head (read by the producer) and the consumer's
  // cached copy of the published tail.
  struct alignas(kCacheLineSize) ConsumerSide {
    std::atomic<uint64_t> head{0};
    uint64_t tail_cache = 0;
  };

  ProducerSide prod_;
  ProducerPrivate priv_;
  ConsumerSide cons_;
  alignas(kCacheLineSize) uint64_t mask_ = 0;
  std::unique_ptr<T[]> slots_;
};

}  // namespace shardmq::shard
