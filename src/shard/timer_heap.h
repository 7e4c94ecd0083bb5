// Per-shard timers: a binary min-heap of (deadline, id) plus a hash map from id
// to callback. Schedule is O(log n); Cancel is O(1) (the heap entry is left
// behind and skipped when it surfaces; the heap is rebuilt when such garbage
// outnumbers live timers). Not thread-safe: owned by one shard thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "shard/types.h"

namespace shardmq::shard {

using Clock = std::chrono::steady_clock;

class TimerHeap {
 public:
  using Callback = absl::AnyInvocable<void()>;

  TimerId Schedule(Clock::time_point deadline, Callback cb) {
    TimerId id{++next_id_};
    heap_.push_back(Entry{deadline, id.value});
    std::push_heap(heap_.begin(), heap_.end(), Later);
    callbacks_.emplace(id.value, std::move(cb));
    MaybeCompact();
    return id;
  }

  // Returns true if the timer was pending (and now will not fire).
  bool Cancel(TimerId id) { return callbacks_.erase(id.value) > 0; }

  size_t size() const { return callbacks_.size(); }

  // Earliest live deadline, or Clock::time_point::max() when there is none.
  Clock::time_point NextDeadline() {
    while (!heap_.empty() && !callbacks_.contains(heap_.front().id)) PopTop();
    return heap_.empty() ? Clock::time_point::max() : heap_.front().deadline;
  }

  // Runs every callback whose deadline is <= now, in deadline order. A callback
  // may schedule or cancel timers; timers it schedules for <= now run in the
  // next call, not this one. Returns the number fired.
  size_t RunExpired(Clock::time_point now) {
    size_t fired = 0;
    const uint64_t last_id = next_id_;
    while (!heap_.empty() && heap_.front().deadline <= now && heap_.front().id <= last_id) {
      const uint64_t id = heap_.front().id;
      PopTop();
      auto it = callbacks_.find(id);
      if (it == callbacks_.end()) continue;  // cancelled
      Callback cb = std::move(it->second);
      callbacks_.erase(it);
      cb();
      ++fired;
    }
    return fired;
  }

 private:
  struct Entry {
    Clock::time_point deadline;
    uint64_t id;
  };
  static bool Later(const Entry& a, const Entry& b) {
    return a.deadline != b.deadline ? a.deadline > b.deadline : a.id > b.id;
  }
  void PopTop() {
    std::pop_heap(heap_.begin(), heap_.end(), Later);
    heap_.pop_back();
  }
  void MaybeCompact() {
    if (heap_.size() < 64 || heap_.size() < 2 * callbacks_.size()) return;
    std::erase_if(heap_, [&](const Entry& e) { return !callbacks_.contains(e.id); });
    std::make_heap(heap_.begin(), heap_.end(), Later);
  }

  std::vector<Entry> heap_;
  absl::flat_hash_map<uint64_t, Callback> callbacks_;
  uint64_t next_id_ = 0;
};

}  // namespace shardmq::shard
