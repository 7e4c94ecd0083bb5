#include "seq_tracker.h"

#include <algorithm>

namespace shardmq::bench {

bool SeqTracker::Seen(uint64_t sequence) const {
  const uint64_t word = sequence / 64;
  return word < bits_.size() && (bits_[word] >> (sequence % 64) & 1) != 0;
}

Arrival SeqTracker::Record(uint64_t sequence) {
  ++received_;
  const uint64_t word = sequence / 64;
  if (word >= bits_.size()) bits_.resize(std::max<uint64_t>(word + 1, bits_.size() * 2), 0);
  const uint64_t mask = uint64_t{1} << (sequence % 64);
  if (bits_[word] & mask) {
    ++duplicates_;
    return Arrival::kDuplicate;
  }
  bits_[word] |= mask;
  ++unique_;
  if (sequence < next_) {
    ++reordered_;
    return Arrival::kReordered;
  }
  next_ = sequence + 1;
  return Arrival::kInOrder;
}

void SeqTracker::Merge(const SeqTracker& other) {
  if (other.bits_.size() > bits_.size()) bits_.resize(other.bits_.size(), 0);
  uint64_t both = 0;
  for (size_t i = 0; i < other.bits_.size(); ++i) {
    both += static_cast<uint64_t>(__builtin_popcountll(bits_[i] & other.bits_[i]));
    bits_[i] |= other.bits_[i];
  }
  received_ += other.received_;
  duplicates_ += other.duplicates_ + both;
  unique_ += other.unique_ - both;
  reordered_ += other.reordered_;
  next_ = std::max(next_, other.next_);
}

uint64_t SeqTracker::Lost(uint64_t sent) const {
  uint64_t seen_below = 0;
  const uint64_t full_words = sent / 64;
  for (uint64_t i = 0; i < std::min<uint64_t>(full_words, bits_.size()); ++i) {
    seen_below += static_cast<uint64_t>(__builtin_popcountll(bits_[i]));
  }
  if (sent % 64 != 0 && full_words < bits_.size()) {
    const uint64_t mask = (uint64_t{1} << (sent % 64)) - 1;
    seen_below += static_cast<uint64_t>(__builtin_popcountll(bits_[full_words] & mask));
  }
  return sent - seen_below;
}

}  // namespace shardmq::bench
