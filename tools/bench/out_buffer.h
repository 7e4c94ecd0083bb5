// A growable byte queue for one connection's pending output. Packets are
// encoded straight into it (Append) and many of them leave in one write(2),
// which is how the bench batches PUBLISHes. No zero-filling on growth.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "absl/types/span.h"

namespace shardmq::bench {

class OutBuffer {
 public:
  // Room for `n` more bytes at the end; the caller fills all of them.
  absl::Span<uint8_t> Append(size_t n) {
    if (end_ + n > capacity_) Grow(n);
    uint8_t* p = data_.get() + end_;
    end_ += n;
    return absl::MakeSpan(p, n);
  }
  const uint8_t* data() const { return data_.get() + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  void Consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }

 private:
  void Grow(size_t n) {
    const size_t live = size();
    size_t cap = capacity_ ? capacity_ : 4096;
    while (cap < live + n) cap *= 2;
    if (cap == capacity_ && begin_ > 0) {  // Enough room once compacted.
      std::memmove(data_.get(), data_.get() + begin_, live);
    } else {
      auto fresh = std::make_unique_for_overwrite<uint8_t[]>(cap);
      if (live) std::memcpy(fresh.get(), data_.get() + begin_, live);
      data_ = std::move(fresh);
      capacity_ = cap;
    }
    begin_ = 0;
    end_ = live;
  }

  std::unique_ptr<uint8_t[]> data_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace shardmq::bench
