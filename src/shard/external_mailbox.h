// ExternalMailbox: how threads that are not shards (an embedding program's
// threads, an auth back end's completion thread) hand work to one shard.
//
// Shards talk to each other through SPSC rings (spsc_ring.h), one per
// ordered pair, because that traffic is the hot path. Outside threads are
// many, few of their calls are hot, and they need an unbounded way in that
// never fails for "full", so this is a mutex-protected queue of closures:
// multi-producer, one consumer (the shard), drained once per loop turn.
//
// Wake-up: Push() reports whether the queue was empty; ShardGroup then writes
// the shard's eventfd, whose read is always armed in the shard's ring, so a
// sleeping shard wakes and one that is about to sleep finds a completion
// waiting. Only the push onto an empty queue writes, so a burst costs one
// write.
//
// Thread safety: Push() and size() from any thread; Drain() from the owning
// shard's thread only. Tasks left when the mailbox is destroyed are destroyed
// without running (their captures' destructors still run, so a waiter can
// notice).
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <mutex>

#include "absl/functional/any_invocable.h"

namespace shardmq::shard {

class ShardHandler;

class ExternalMailbox {
 public:
  // Runs on the shard thread with the shard's handler.
  using Task = absl::AnyInvocable<void(ShardHandler&)>;

  // Any thread. True when the queue was empty before: the caller must wake
  // the shard.
  bool Push(Task task);

  // Shard thread. Runs every task queued now, in push order (tasks pushed by
  // one thread run in that thread's order), and returns how many ran. All of
  // them: a task left behind would not wake the shard again. The lock is not
  // held while tasks run, so a task may Push() again (it runs next turn).
  size_t Drain(ShardHandler& handler);

  // Any thread; a hint (relaxed).
  size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  std::mutex mutex_;
  std::deque<Task> tasks_;  // guarded by mutex_
  std::atomic<size_t> size_{0};
};

}  // namespace shardmq::shard
