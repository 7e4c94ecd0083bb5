// ShardSet: a set of shard numbers (0..kMaxShards-1) as a bitset that costs
// one inline word for shards 0..63 and allocates the other 15 words only when
// a shard >= 64 is added. Deployments with <= 64 shards never allocate.
//
//   ShardSet s; s.Add(3); s.Add(70);
//   s.ForEach([](uint32_t shard) { ... });  // 3, 70
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace shardmq::topic {

// Lifecycle: a value type. Concurrency: none; copy it to hand it to another
// thread.
class ShardSet {
 public:
  static constexpr uint32_t kMaxShards = 1024;

  ShardSet() = default;
  ShardSet(const ShardSet& other) : low_(other.low_) {
    if (other.high_ != nullptr) high_ = std::make_unique<HighWords>(*other.high_);
  }
  ShardSet& operator=(const ShardSet& other) {
    if (this != &other) {
      low_ = other.low_;
      if (other.high_ == nullptr) {
        if (high_ != nullptr) high_->fill(0);
      } else if (high_ != nullptr) {
        *high_ = *other.high_;
      } else {
        high_ = std::make_unique<HighWords>(*other.high_);
      }
    }
    return *this;
  }
  ShardSet(ShardSet&&) noexcept = default;
  ShardSet& operator=(ShardSet&&) noexcept = default;

  // Adds `shard` (< kMaxShards). Returns true if it was not in the set.
  bool Add(uint32_t shard) {
    uint64_t& word = Word(shard);
    uint64_t bit = uint64_t{1} << (shard % 64);
    bool added = (word & bit) == 0;
    word |= bit;
    return added;
  }

  // Removes `shard`. Returns true if it was in the set.
  bool Remove(uint32_t shard) {
    if (shard >= 64 && (high_ == nullptr || shard >= kMaxShards)) return false;
    uint64_t& word = Word(shard);
    uint64_t bit = uint64_t{1} << (shard % 64);
    bool removed = (word & bit) != 0;
    word &= ~bit;
    return removed;
  }

  bool Contains(uint32_t shard) const {
    if (shard < 64) return (low_ >> shard) & 1;
    if (high_ == nullptr || shard >= kMaxShards) return false;
    return ((*high_)[shard / 64 - 1] >> (shard % 64)) & 1;
  }

  bool empty() const {
    if (low_ != 0) return false;
    if (high_ == nullptr) return true;
    for (uint64_t w : *high_) {
      if (w != 0) return false;
    }
    return true;
  }

  size_t count() const {
    size_t n = CountBits(low_);
    if (high_ != nullptr) {
      for (uint64_t w : *high_) n += CountBits(w);
    }
    return n;
  }

  // Empties the set, keeping any allocated words for reuse.
  void Clear() {
    low_ = 0;
    if (high_ != nullptr) high_->fill(0);
  }

  ShardSet& operator|=(const ShardSet& other) {
    low_ |= other.low_;
    if (other.high_ != nullptr) {
      if (high_ == nullptr) high_ = std::make_unique<HighWords>();
      for (size_t i = 0; i < high_->size(); ++i) (*high_)[i] |= (*other.high_)[i];
    }
    return *this;
  }

  friend bool operator==(const ShardSet& a, const ShardSet& b) {
    if (a.low_ != b.low_) return false;
    for (size_t i = 0; i < kHighWords; ++i) {
      if (a.High(i) != b.High(i)) return false;
    }
    return true;
  }

  // Calls f(uint32_t shard) for every member, in increasing order.
  template <class F>
  void ForEach(F&& f) const {
    ForEachBit(low_, 0, f);
    if (high_ != nullptr) {
      for (size_t i = 0; i < kHighWords; ++i) ForEachBit((*high_)[i], 64 * (i + 1), f);
    }
  }

  // The members below 64 as a mask: the whole set when shards <= 64.
  uint64_t low_word() const { return low_; }

 private:
  static constexpr size_t kHighWords = kMaxShards / 64 - 1;
  using HighWords = std::array<uint64_t, kHighWords>;

  uint64_t& Word(uint32_t shard) {
    if (shard < 64) return low_;
    // Always on: a larger shard number would write past the array. The shard
    // count is checked against kMaxShards at startup, so this is a bug.
    if (shard >= kMaxShards) std::abort();
    if (high_ == nullptr) high_ = std::make_unique<HighWords>();  // Zero-filled.
    return (*high_)[shard / 64 - 1];
  }
  uint64_t High(size_t i) const { return high_ == nullptr ? 0 : (*high_)[i]; }

  // Built for baseline x86-64 (no POPCNT instruction), std::popcount is a
  // call into libgcc, ~2 ns of every routed message; a publish's set of
  // target shards almost always has zero or one member.
  static size_t CountBits(uint64_t w) {
    if ((w & (w - 1)) == 0) return w != 0 ? 1 : 0;
    return static_cast<size_t>(std::popcount(w));
  }

  template <class F>
  static void ForEachBit(uint64_t word, uint32_t base, F& f) {
    while (word != 0) {
      f(base + static_cast<uint32_t>(std::countr_zero(word)));
      word &= word - 1;
    }
  }

  uint64_t low_ = 0;
  std::unique_ptr<HighWords> high_;  // Shards 64..1023; null until one is added.
};

}  // namespace shardmq::topic
