// A FIFO of queued messages that costs nothing while empty.
//
// Every session has one, and nearly all of them are empty nearly all the
// time; std::deque (libstdc++) allocates a 64-byte map and a 512-byte block
// even when empty, which alone would break the budget for an idle connection.
// This is a vector with a moving head: push at the back, pop from the front,
// the consumed prefix is compacted away once it is more than half the vector,
// and a burst's storage is released when the queue empties.
//
// Thread: owned by a Session, used only on its shard.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace shardmq::broker {

template <typename T>
class MessageQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }

  void push_back(T item) { items_.push_back(std::move(item)); }

  T& front() { return items_[head_]; }

  // The queued elements, oldest first (e.g. to log them all).
  T* begin() { return items_.data() + head_; }
  T* end() { return items_.data() + items_.size(); }

  void pop_front() {
    items_[head_] = T();  // drop what the element holds (a message reference) now
    ++head_;
    if (head_ == items_.size()) {
      // A queue that oscillates around empty keeps a small buffer rather than
      // allocating per message; a burst's storage is given back.
      if (items_.capacity() > 8) {
        Clear();
      } else {
        items_.clear();
        head_ = 0;
      }
    } else if (head_ > 32 && head_ * 2 > items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

  // Empties the queue and gives its memory back.
  void Clear() {
    std::vector<T>().swap(items_);
    head_ = 0;
  }

 private:
  std::vector<T> items_;
  size_t head_ = 0;
};

}  // namespace shardmq::broker
