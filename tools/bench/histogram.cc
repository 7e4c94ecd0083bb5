#include "histogram.h"

#include <algorithm>
#include <cmath>

namespace shardmq::bench {

int LatencyHistogram::BucketOf(uint64_t value) {
  if (value < kLinear) return static_cast<int>(value);
  const int msb = 63 - __builtin_clzll(value);  // >= 7
  const uint64_t top = value >> (msb - 6);      // 64..127: 6 bits below the msb
  return kLinear + (msb - 7) * kSubBuckets + static_cast<int>(top - kSubBuckets);
}

uint64_t LatencyHistogram::BucketUpper(int bucket) {
  if (bucket < kLinear) return static_cast<uint64_t>(bucket);
  const int msb = (bucket - kLinear) / kSubBuckets + 7;
  const uint64_t top = static_cast<uint64_t>((bucket - kLinear) % kSubBuckets + kSubBuckets);
  const int shift = msb - 6;
  return ((top + 1) << shift) - 1;
}

void LatencyHistogram::Record(uint64_t value_ns) {
  ++counts_[BucketOf(value_ns)];
  ++count_;
  min_ = std::min(min_, value_ns);
  max_ = std::max(max_, value_ns);
  sum_ += static_cast<double>(value_ns);
}

void LatencyHistogram::RecordCorrected(uint64_t value_ns, uint64_t expected_interval_ns) {
  Record(value_ns);
  if (expected_interval_ns == 0) return;
  for (uint64_t missing = value_ns; missing >= 2 * expected_interval_ns;) {
    missing -= expected_interval_ns;
    Record(missing);
  }
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

uint64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  const uint64_t rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(BucketUpper(i), max_);
  }
  return max_;
}

}  // namespace shardmq::bench
