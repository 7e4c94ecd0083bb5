// Snapshot<T>: an immutable value that a control thread replaces (SIGHUP
// reload) while shard threads keep reading it, with no lock on the readers'
// usual path.
//
//   Snapshot<AuthConfig> current(initial);           // shared by all shards
//   Snapshot<AuthConfig>::Reader reader(current);   // one per shard thread
//   const AuthConfig& config = reader.Get();        // per CONNECT
//   current.Publish(std::move(next));               // control thread
//
// Costs. Publish() and Load() take a mutex and copy a shared_ptr (a
// reference count update on a shared cache line): fine for reloads, not for
// every packet. Reader::Get() does one acquire load of a 64-bit generation
// counter (a line that changes only on reload, so it stays shared in every
// core's cache) and takes the Load() path only after a Publish(). The old
// value stays alive as long as a Reader or a caller's shared_ptr holds it,
// so a connection that authenticated against the old files may finish its
// check against them.
//
// Why not std::atomic<std::shared_ptr>: libstdc++ 12 has it, but not
// lock-free (a spin lock bit in the control block pointer), and its load()
// releases that lock with memory_order_relaxed, so a load and a later store
// are not ordered: ThreadSanitizer reports a data race on the stored
// pointer (seen with tests/auth/auth_config_test.cc). A mutex costs the same
// on this path and is correct by the book.
//
// Concurrency: Snapshot is safe from any number of threads. A Reader belongs
// to one thread (a shard); Get()'s reference is valid until that thread's
// next Get().
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>

namespace shardmq::auth {

template <typename T>
class Snapshot {
 public:
  explicit Snapshot(std::shared_ptr<const T> initial) : value_(std::move(initial)) {}
  // Publish() (and Load()) may be called from any thread at once.
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  // The current value (never null if the initial one and every published
  // one were not). Takes the spin lock; see the file comment.
  std::shared_ptr<const T> Load() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return value_;
  }

  // Makes `next` the current value for every later Load() and Reader::Get().
  void Publish(std::shared_ptr<const T> next) {
    std::shared_ptr<const T> old;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      old = std::exchange(value_, std::move(next));
      // Bumped after the value changes: a reader that sees the new
      // generation (acquire) then loads at least this value. A reader that
      // sees the old generation but already the new value merely loads once
      // more later.
      generation_.fetch_add(1, std::memory_order_release);
    }
    // `old` (maybe the last reference) is destroyed here, outside the lock.
  }

  // How many times Publish() has run.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // One thread's cached view; see the file comment.
  class Reader {
   public:
    explicit Reader(const Snapshot& source)
        : source_(&source), generation_(source.generation()), value_(source.Load()) {}

    const T& Get() {
      uint64_t now = source_->generation();
      if (now != generation_) {
        value_ = source_->Load();
        generation_ = now;
      }
      return *value_;
    }

    // A reference-counted handle, for work that outlives the next Get().
    std::shared_ptr<const T> Share() {
      Get();
      return value_;
    }

   private:
    const Snapshot* source_;
    uint64_t generation_;
    std::shared_ptr<const T> value_;
  };

 private:
  mutable std::mutex mutex_;  // Guards value_; see "Costs" above.
  std::shared_ptr<const T> value_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace shardmq::auth
