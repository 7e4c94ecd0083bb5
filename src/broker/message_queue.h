// A FIFO of queued messages that costs nothing while empty.
//
// Every session has one, and nearly all of them are empty nearly all the
// time; std::deque (libstdc++) allocates a 64-byte map and a 512-byte block
// even when empty, which alone would break the budget for an idle connection.
// This is a ring of power-of-two capacity: push at the back, pop from the
// front, no element moves until the ring grows. A QoS 1 subscriber's queue
// fills and drains thousands of times a second; the vector with a moving head
// this replaced moved every element once more when compacting, and freed its
// storage each time it ran dry. The ring keeps a small one
// (kKeepCapacity) and gives a burst's back when it empties.
//
// Thread: owned by a Session, used only on its shard.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

namespace shardmq::broker {

template <typename T>
class MessageQueue {
 public:
  MessageQueue() = default;
  MessageQueue(MessageQueue&& other) noexcept { *this = std::move(other); }
  MessageQueue& operator=(MessageQueue&& other) noexcept {
    slots_ = std::move(other.slots_);
    capacity_ = std::exchange(other.capacity_, 0);
    head_ = std::exchange(other.head_, 0);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }

  void push_back(T item) {
    if (size_ == capacity_) Grow();
    slots_[(head_ + size_) & (capacity_ - 1)] = std::move(item);
    ++size_;
  }

  T& front() { return slots_[head_]; }

  void pop_front() {
    slots_[head_] = T();  // drop what the element holds (a message reference) now
    head_ = (head_ + 1) & (capacity_ - 1);
    if (--size_ == 0) {
      head_ = 0;
      if (capacity_ > kKeepCapacity) Clear();
    }
  }

  // The queued elements, oldest first (e.g. to log them all).
  class iterator {
   public:
    iterator(MessageQueue* queue, size_t i) : queue_(queue), i_(i) {}
    T& operator*() const { return queue_->slots_[(queue_->head_ + i_) & (queue_->capacity_ - 1)]; }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const iterator& other) const { return i_ == other.i_; }

   private:
    MessageQueue* queue_;
    size_t i_;
  };
  iterator begin() { return iterator(this, 0); }
  iterator end() { return iterator(this, size_); }

  // Empties the queue and gives its memory back.
  void Clear() {
    slots_.reset();
    capacity_ = head_ = size_ = 0;
  }

 private:
  // Kept when the queue runs dry: what a QoS 1/2 subscriber's in-flight
  // window usually has waiting behind it, without holding a burst's worth.
  static constexpr uint32_t kKeepCapacity = 16;

  void Grow() {
    const uint32_t capacity = capacity_ == 0 ? 4 : capacity_ * 2;
    auto slots = std::make_unique<T[]>(capacity);
    for (uint32_t i = 0; i < size_; ++i) {
      slots[i] = std::move(slots_[(head_ + i) & (capacity_ - 1)]);
    }
    slots_ = std::move(slots);
    capacity_ = capacity;
    head_ = 0;
  }

  std::unique_ptr<T[]> slots_;
  uint32_t capacity_ = 0;  // 0 or a power of two
  uint32_t head_ = 0;
  uint32_t size_ = 0;
};

}  // namespace shardmq::broker
