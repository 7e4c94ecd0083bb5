#include "shard/spsc_ring.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

#if defined(__SANITIZE_THREAD__)
#define SHARDMQ_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHARDMQ_TSAN 1
#endif
#endif

namespace shardmq::shard {
namespace {

TEST(SpscRingTest, StartsEmpty) {
  SpscRing<int> r(8);
  EXPECT_EQ(r.capacity(), 8u);
  EXPECT_FALSE(r.HasPublished());
  EXPECT_EQ(r.Drain(10, [](int) { FAIL(); }), 0u);
}

TEST(SpscRingTest, CapacityRoundsUp) {
  SpscRing<int> r(5);
  EXPECT_EQ(r.capacity(), 8u);
}

TEST(SpscRingTest, StagedItemsInvisibleUntilPublish) {
  SpscRing<int> r(8);
  ASSERT_TRUE(r.TryPush(1));
  ASSERT_TRUE(r.TryPush(2));
  EXPECT_EQ(r.StagedCount(), 2u);
  EXPECT_FALSE(r.HasPublished());
  EXPECT_EQ(r.Drain(10, [](int) {}), 0u);
  EXPECT_EQ(r.Publish(), 2u);
  EXPECT_EQ(r.Publish(), 0u);
  EXPECT_TRUE(r.HasPublished());
  std::vector<int> got;
  EXPECT_EQ(r.Drain(10, [&](int v) { got.push_back(v); }), 2u);
  EXPECT_EQ(got, (std::vector<int>{1, 2}));
  EXPECT_FALSE(r.HasPublished());
}

TEST(SpscRingTest, FullCountsStagedItems) {
  SpscRing<int> r(4);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(r.TryPush(i));
  EXPECT_FALSE(r.TryPush(99));  // full even though nothing is published
  r.Publish();
  EXPECT_FALSE(r.TryPush(99));
  int first = -1;
  EXPECT_EQ(r.Drain(1, [&](int v) { first = v; }), 1u);
  EXPECT_EQ(first, 0);
  EXPECT_TRUE(r.TryPush(4));  // one slot freed
  EXPECT_FALSE(r.TryPush(5));
}

TEST(SpscRingTest, WrapAroundKeepsOrder) {
  SpscRing<uint64_t> r(4);
  uint64_t next_push = 0, next_pop = 0;
  for (int round = 0; round < 1000; ++round) {
    const int k = 1 + round % 4;
    for (int i = 0; i < k; ++i) ASSERT_TRUE(r.TryPush(next_push++));
    r.Publish();
    const size_t n = r.Drain(k, [&](uint64_t v) { EXPECT_EQ(v, next_pop++); });
    EXPECT_EQ(n, size_t(k));
  }
  EXPECT_EQ(next_pop, next_push);
}

TEST(SpscRingTest, DrainRespectsBatchLimit) {
  SpscRing<int> r(64);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(r.TryPush(i));
  r.Publish();
  int expect = 0;
  EXPECT_EQ(r.Drain(16, [&](int v) { EXPECT_EQ(v, expect++); }), 16u);
  EXPECT_EQ(r.Drain(16, [&](int v) { EXPECT_EQ(v, expect++); }), 16u);
  EXPECT_EQ(r.Drain(16, [&](int v) { EXPECT_EQ(v, expect++); }), 8u);
  EXPECT_EQ(expect, 40);
}

TEST(SpscRingTest, PushLimitCountsItemsHeld) {
  SpscRing<int> r(64);
  const auto put = [](int v) { return [v](int& slot) { slot = v; }; };
  ASSERT_TRUE(r.TryEmplace(put(1), 2));
  ASSERT_TRUE(r.TryEmplace(put(2), 2));
  EXPECT_FALSE(r.TryEmplace(put(3), 2));  // holds 2: full for this limit
  EXPECT_TRUE(r.TryEmplace(put(3)));      // not for the capacity
  r.Publish();
  EXPECT_EQ(r.Drain(2, [](int) {}), 2u);
  EXPECT_TRUE(r.TryEmplace(put(4), 2));  // holds 1 again
}

// Every thread is a shard: it produces into its ring to every other thread and
// consumes the ring from every other thread. Items carry (producer, sequence);
// each consumer checks per-producer sequences are exactly 0, 1, 2, ...
TEST(SpscRingStressTest, AllPairsNoLossNoDuplicateNoReorder) {
#ifdef SHARDMQ_TSAN
  constexpr uint64_t kPerPair = 100'000;
#else
  constexpr uint64_t kPerPair = 1'000'000;
#endif
  constexpr int kThreads = 4;
  constexpr size_t kBatch = 16;
  struct Item {
    uint32_t producer;
    uint64_t seq;
  };
  std::vector<std::unique_ptr<SpscRing<Item>>> rings(kThreads * kThreads);
  for (int f = 0; f < kThreads; ++f)
    for (int t = 0; t < kThreads; ++t)
      if (f != t) rings[f * kThreads + t] = std::make_unique<SpscRing<Item>>(256);
  std::atomic<int> errors{0};
  std::vector<uint64_t> received(kThreads * kThreads, 0);

  auto body = [&](int me) {
    std::vector<uint64_t> sent(kThreads, 0);
    std::vector<uint64_t> expect(kThreads, 0);
    bool done = false;
    while (!done) {
      done = true;
      for (int t = 0; t < kThreads; ++t) {
        if (t == me) continue;
        SpscRing<Item>& r = *rings[me * kThreads + t];
        for (size_t i = 0; i < kBatch && sent[t] < kPerPair; ++i) {
          if (!r.TryPush(Item{uint32_t(me), sent[t]})) break;
          ++sent[t];
        }
        r.Publish();
        if (sent[t] < kPerPair) done = false;
      }
      for (int f = 0; f < kThreads; ++f) {
        if (f == me) continue;
        rings[f * kThreads + me]->Drain(64, [&](const Item& it) {
          if (it.producer != uint32_t(f) || it.seq != expect[f]) errors.fetch_add(1);
          expect[f] = it.seq + 1;
        });
        if (expect[f] < kPerPair) done = false;
      }
    }
    for (int f = 0; f < kThreads; ++f) received[f * kThreads + me] = expect[f];
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(body, i);
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  for (int f = 0; f < kThreads; ++f) {
    for (int t = 0; t < kThreads; ++t) {
      if (f != t) {
        EXPECT_EQ(received[f * kThreads + t], kPerPair);
      }
    }
  }
  for (auto& r : rings) {
    if (r) {
      EXPECT_FALSE(r->HasPublished());
    }
  }
}

}  // namespace
}  // namespace shardmq::shard
