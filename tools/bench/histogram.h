// A log-linear latency histogram (HdrHistogram-like, ~0.8% relative error)
// over nanosecond values, fixed size (30 KB), no allocation when recording.
// One per worker thread; merged at the end.
//
// Coordinated omission: the bench measures from the *intended* send time
// stamped into the payload (see stamp.h and IntendedSendNs), so a stalled
// publisher's backlog shows up as latency. RecordCorrected is the classic
// HdrHistogram back-fill for closed-loop measurements where only the actual
// send time is known; both give the same distribution for a fixed-rate
// stream (tests/bench/histogram_test.cc shows it).
#pragma once

#include <array>
#include <cstdint>

namespace shardmq::bench {

class LatencyHistogram {
 public:
  void Record(uint64_t value_ns);
  // Records `value_ns` and, if it exceeds `expected_interval_ns`, the values
  // the requests queued behind it would have seen: value - k*interval for
  // k = 1.. while the result stays >= interval.
  void RecordCorrected(uint64_t value_ns, uint64_t expected_interval_ns);
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }
  // Smallest recorded bucket value v such that at least q (0..1] of all
  // values are <= v; reported as the bucket's upper edge, capped at max().
  uint64_t Percentile(double q) const;

  // Exposed for tests: bucket index and the highest value a bucket holds.
  static int BucketOf(uint64_t value);
  static uint64_t BucketUpper(int bucket);

 private:
  static constexpr int kLinear = 128;  // Values below this are exact.
  static constexpr int kSubBuckets = 64;
  static constexpr int kBuckets = kLinear + (64 - 7) * kSubBuckets;

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  double sum_ = 0;  // Only for the mean; double avoids overflow.
};

// The intended send time of message `sequence` of a publisher that started at
// `start_ns` and publishes `rate` messages per second (rate > 0).
inline uint64_t IntendedSendNs(uint64_t start_ns, double rate, uint64_t sequence) {
  return start_ns + static_cast<uint64_t>(static_cast<double>(sequence) * 1e9 / rate);
}

}  // namespace shardmq::bench
