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
// Closing: when its shard leaves its loop, Close() destroys what is queued
// without running it and refuses later pushes, so a thread waiting on a task
// learns at once that it will not run (it does not wait for Join()).
//
// Thread safety: Push() and size() from any thread; Drain() and Close() from
// the owning shard's thread only. Tasks left when the mailbox is destroyed
// are destroyed without running (their captures' destructors still run, so
// a waiter can notice).
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

  enum class Pushed {
    kQueued,      // the shard will run it
    kQueuedWake,  // the same, onto an empty queue: the caller must wake the shard
    kRefused,     // closed: `task` is left to the caller, unrun
  };
  // Any thread. Moves from `task` only when it is queued.
  Pushed Push(Task&& task);

  // Shard thread. Runs every task queued now, in push order (tasks pushed by
  // one thread run in that thread's order), and returns how many ran. All of
  // them: a task left behind would not wake the shard again. The lock is not
  // held while tasks run, so a task may Push() again (it runs next turn).
  size_t Drain(ShardHandler& handler);

  // Shard thread, once it runs no more tasks: refuses later pushes and
  // destroys the queued tasks unrun (outside the lock, so their destructors
  // may post elsewhere). Returns how many were dropped.
  size_t Close();

  // Any thread; a hint (relaxed).
  size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  std::mutex mutex_;
  std::deque<Task> tasks_;  // guarded by mutex_
  bool closed_ = false;     // guarded by mutex_
  std::atomic<size_t> size_{0};
};

}  // namespace shardmq::shard
