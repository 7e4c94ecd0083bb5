// Snapshot<T>: an immutable value that a control thread replaces (SIGHUP
// reload) while shard threads keep reading it, with no lock on the readers'
// usual path.
//
//   Snapshot<AuthConfig> current(initial);           // shared by all shards
//   Snapshot<AuthConfig>::Reader reader(current);   // one per shard thread
//   const AuthConfig& config = reader.Get();        // per CONNECT
//   current.Publish(std::move(next));               // control thread
//
// Costs. Publish() and Load() go through std::atomic<std::shared_ptr>,
// which libstdc++ 12 implements with a spin lock in the control block
// pointer (is_always_lock_free is false) plus a reference count update on a
// shared cache line: fine for reloads, not for every packet. Reader::Get()
// does one acquire load of a 64-bit generation counter (a read of a line
// that changes only on reload, so it stays shared in every core's cache)
// and takes the Load() path only after a Publish(). The old value stays
// alive as long as a Reader or a caller's shared_ptr holds it, so a
// connection that authenticated against the old files may finish its check
// against them.
//
// Concurrency: Snapshot is safe from any number of threads. A Reader belongs
// to one thread (a shard); Get()'s reference is valid until that thread's
// next Get().
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

namespace shardmq::auth {

template <typename T>
class Snapshot {
 public:
  explicit Snapshot(std::shared_ptr<const T> initial) : value_(std::move(initial)) {}
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  // The current value (never null if the initial one and every published
  // one were not). Takes the spin lock; see the file comment.
  std::shared_ptr<const T> Load() const { return value_.load(std::memory_order_acquire); }

  // Makes `next` the current value for every later Load() and Reader::Get().
  void Publish(std::shared_ptr<const T> next) {
    value_.store(std::move(next), std::memory_order_release);
    // Release after the store: a reader that sees the new generation
    // (acquire) then loads at least this value. A reader that sees the old
    // generation but already the new value merely loads once more later.
    generation_.fetch_add(1, std::memory_order_release);
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
  std::atomic<std::shared_ptr<const T>> value_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace shardmq::auth
