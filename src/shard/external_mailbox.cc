#include "shard/external_mailbox.h"

#include <utility>

namespace shardmq::shard {

ExternalMailbox::Pushed ExternalMailbox::Push(Task&& task) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return Pushed::kRefused;
  const bool was_empty = tasks_.empty();
  tasks_.push_back(std::move(task));
  size_.store(tasks_.size(), std::memory_order_relaxed);
  return was_empty ? Pushed::kQueuedWake : Pushed::kQueued;
}

size_t ExternalMailbox::Close() {
  std::deque<Task> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    dropped.swap(tasks_);
    size_.store(0, std::memory_order_relaxed);
  }
  return dropped.size();  // destroyed here, unlocked
}

size_t ExternalMailbox::Drain(ShardHandler& handler) {
  if (size_.load(std::memory_order_relaxed) == 0) {
    // Nothing seen without the lock. A push racing with this check wrote the
    // eventfd after its push, so the loop turns again and sees it then.
    return 0;
  }
  std::deque<Task> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch.swap(tasks_);
    size_.store(0, std::memory_order_relaxed);
  }
  for (Task& task : batch) task(handler);
  return batch.size();
}

}  // namespace shardmq::shard
