// The hot-path promise: matching a PUBLISH allocates nothing. Counts calls to
// the global operator new while Match runs on warmed-up structures.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "topic/interest_map.h"
#include "topic/shard_set.h"
#include "topic/subscription_index.h"
#include "topic/topic_trie.h"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace shardmq::topic {
namespace {

// Deep enough that the erase path and any small buffers spill, wide enough
// that some nodes use the hash map.
void Populate(SubscriptionIndex& index, InterestMap& interest) {
  for (int i = 0; i < 100; ++i) {
    std::string n = std::to_string(i);
    index.Subscribe(i, "a/" + n + "/b", {.qos = 1});
    index.Subscribe(i, "a/+/b", {.qos = 1});
    index.Subscribe(i, "$share/g/a/#", {});
    interest.Add("a/" + n + "/b", i % 64);
    interest.Add("a/#", 3);
    interest.Add("$share/g/a/+/b", 5);
  }
  index.Subscribe(1000, "#", {});
}

TEST(NoAllocationTest, MatchingDoesNotAllocate) {
  SubscriptionIndex index;
  InterestMap interest;
  Populate(index, interest);
  ShardSet out;
  const std::string topics[] = {"a/7/b", "a/x/b", "a", "a/7/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q",
                                "$SYS/x"};
  long before = g_allocations.load();
  ASSERT_GT(before, 0);  // The counting operator new is the one in use.
  long seen = 0;
  for (const std::string& t : topics) {
    index.Match(t, [&](SubscriberId, const SubscriptionOptions&) { ++seen; });
    index.MatchShared(t, [&](std::string_view, std::string_view, SharedGroup& g) {
      seen += g.PickRoundRobin().subscriber != 0;
    });
    interest.ShardsFor(t, out);
    interest.MatchShared(
        t, [&](std::string_view, std::string_view, const ShardSet& s) { seen += s.count(); });
  }
  EXPECT_EQ(g_allocations.load() - before, 0);
  EXPECT_GT(seen, 0);
}

TEST(NoAllocationTest, DeepTopicsDoNotExhaustTheStack) {
  // Match recurses once per level of the deepest stored filter; 2000 levels
  // is far beyond any real topic.
  std::string deep;
  for (int i = 0; i < 2000; ++i) deep += i == 0 ? "x" : "/x";
  TopicTrie<int> trie;
  trie.FindOrInsert(deep) = 1;
  trie.FindOrInsert(deep.substr(0, deep.size() - 2) + "/+") = 2;
  trie.FindOrInsert("x/#") = 4;
  int sum = 0;
  trie.Match(deep, [&](int& v) { sum += v; });
  EXPECT_EQ(sum, 7);
  EXPECT_TRUE(trie.Erase(deep));
}

}  // namespace
}  // namespace shardmq::topic
