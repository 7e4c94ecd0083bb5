// Benchmarks for src/topic at broker scale: matching against 1M
// subscriptions, subscription churn, retained lookups over 1M topics and the
// interest map over 100k filters. Each large structure is built once and
// shared by the benchmarks that read it; memory per entry is reported as a
// counter measured by mallinfo2 deltas around the build.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "topic/interest_map.h"
#include "topic/retained_index.h"
#include "topic/shard_set.h"
#include "topic/subscription_index.h"
#include "topic/topic_trie.h"
#include "workload.h"

namespace shardmq::topic::bench {
namespace {

constexpr size_t kSubscriptions = 1'000'000;
constexpr size_t kQueryCount = 1 << 14;

std::vector<std::string> MakeTopics(uint32_t seed) {
  Workload w(seed);
  std::vector<std::string> topics(kQueryCount);
  for (auto& t : topics) t = w.Topic();
  return topics;
}

struct IndexFixture {
  SubscriptionIndex index;
  std::vector<std::string> filters;  // filters[i] is subscriber i's filter.
  double bytes_per_subscription = 0;

  IndexFixture() {
    Workload w(42);
    filters.reserve(kSubscriptions);
    for (size_t i = 0; i < kSubscriptions; ++i) filters.push_back(w.Filter());
    size_t before = HeapInUse();
    for (size_t i = 0; i < kSubscriptions; ++i) index.Subscribe(i, filters[i], {.qos = 1});
    bytes_per_subscription = double(HeapInUse() - before) / kSubscriptions;
    std::fprintf(stderr,
                 "SubscriptionIndex: %zu subscriptions, %zu filters, %zu nodes, %.1f bytes per "
                 "subscription\n",
                 index.subscription_count(), index.filter_count(), index.node_count(),
                 bytes_per_subscription);
  }
};

IndexFixture& Index() {
  static auto* fixture = new IndexFixture();
  return *fixture;
}

// The broker's hot path: every local subscriber for one PUBLISH.
void BM_SubscriptionIndex_Match1M(benchmark::State& state) {
  IndexFixture& f = Index();
  std::vector<std::string> topics = MakeTopics(7);
  size_t i = 0, deliveries = 0;
  for (auto _ : state) {
    f.index.Match(topics[i++ % kQueryCount], [&](SubscriberId s, const SubscriptionOptions&) {
      benchmark::DoNotOptimize(s);
      ++deliveries;
    });
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["deliveries_per_match"] = double(deliveries) / state.iterations();
  state.counters["bytes_per_sub"] = f.bytes_per_subscription;
}
BENCHMARK(BM_SubscriptionIndex_Match1M);

// The bare trie (one counter per filter), to separate tree walking from the
// subscriber lists.
void BM_Trie_Match1M(benchmark::State& state) {
  static auto* trie = [] {
    auto* t = new TopicTrie<uint32_t>();
    Workload w(42);
    size_t before = HeapInUse();
    for (size_t i = 0; i < kSubscriptions; ++i) ++t->FindOrInsert(w.Filter());
    std::fprintf(stderr, "TopicTrie<uint32_t>: %zu filters, %zu nodes, %.1f bytes per filter\n",
                 t->size(), t->node_count(), double(HeapInUse() - before) / t->size());
    return t;
  }();
  std::vector<std::string> topics = MakeTopics(7);
  size_t i = 0, matched = 0;
  for (auto _ : state) {
    trie->Match(topics[i++ % kQueryCount], [&](uint32_t& n) { matched += n; });
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["subs_per_match"] = double(matched) / state.iterations();
}
BENCHMARK(BM_Trie_Match1M);

// SUBSCRIBE then UNSUBSCRIBE of a new subscriber on a filter drawn from the
// same mix, against the 1M index (mostly new leaf nodes, created and pruned).
void BM_SubscriptionIndex_Churn1M(benchmark::State& state) {
  IndexFixture& f = Index();
  Workload w(99);
  std::vector<std::string> filters(kQueryCount);
  for (auto& filter : filters) filter = w.Filter();
  size_t i = 0;
  SubscriberId next = kSubscriptions;
  for (auto _ : state) {
    const std::string& filter = filters[i++ % kQueryCount];
    SubscriberId s = next++;
    f.index.Subscribe(s, filter, {.qos = 1});
    f.index.Unsubscribe(s, filter);
  }
  state.SetItemsProcessed(2 * state.iterations());
}
BENCHMARK(BM_SubscriptionIndex_Churn1M);

struct RetainedFixture {
  RetainedIndex<std::shared_ptr<const std::string>> index;
  double bytes_per_topic = 0;

  RetainedFixture() {
    // Every (site, device < 125, metric): exactly 1M distinct topics.
    auto payload = std::make_shared<const std::string>("21.5");
    size_t before = HeapInUse();
    for (int s = 0; s < kSites; ++s) {
      for (int d = 0; d < 125; ++d) {
        for (const char* m : kMetrics) {
          index.Set(absl::StrFormat("site/%d/device/%d/%s", s, d, m), payload);
        }
      }
    }
    bytes_per_topic = double(HeapInUse() - before) / index.size();
    std::fprintf(stderr, "RetainedIndex: %zu topics, %zu nodes, %.1f bytes per topic\n",
                 index.size(), index.node_count(), bytes_per_topic);
  }
};

RetainedFixture& Retained() {
  static auto* fixture = new RetainedFixture();
  return *fixture;
}

// Answering a SUBSCRIBE with wildcards from 1M retained topics. Arg 0:
// "site/{s}/device/+/temp" (125 hits), 1: "site/{s}/#" (1000 hits),
// 2: "site/+/device/{d}/temp" (1000 hits, '+' at a 1000-way level).
void BM_Retained_MatchFilter1M(benchmark::State& state) {
  RetainedFixture& f = Retained();
  Workload w(5);
  std::vector<std::string> filters(1024);
  for (auto& filter : filters) {
    int s = w.Uniform(kSites), d = w.Uniform(125);
    switch (state.range(0)) {
      case 0:
        filter = absl::StrFormat("site/%d/device/+/temp", s);
        break;
      case 1:
        filter = absl::StrFormat("site/%d/#", s);
        break;
      default:
        filter = absl::StrFormat("site/+/device/%d/temp", d);
        break;
    }
  }
  size_t i = 0, hits = 0;
  for (auto _ : state) {
    f.index.MatchFilter(filters[i++ % filters.size()],
                        [&](std::string_view topic, std::shared_ptr<const std::string>& m) {
                          benchmark::DoNotOptimize(topic.data());
                          benchmark::DoNotOptimize(m.get());
                          ++hits;
                        });
  }
  state.SetItemsProcessed(hits);  // Items = retained messages returned.
  state.counters["hits_per_filter"] = double(hits) / state.iterations();
  state.counters["bytes_per_topic"] = f.bytes_per_topic;
}
BENCHMARK(BM_Retained_MatchFilter1M)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

void BM_Retained_Find1M(benchmark::State& state) {
  RetainedFixture& f = Retained();
  Workload w(6);
  std::vector<std::string> topics(kQueryCount);
  for (auto& t : topics) {
    t = absl::StrFormat("site/%d/device/%d/%s", w.Uniform(kSites), w.Uniform(125),
                        kMetrics[w.Uniform(kMetricCount)]);
  }
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(f.index.Find(topics[i++ % kQueryCount]));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Retained_Find1M);

// Cross-shard routing: the union of shards over every filter a topic
// matches, 100k filters spread over range(0) shards.
void BM_InterestMap_ShardsFor100k(benchmark::State& state) {
  const uint32_t shards = static_cast<uint32_t>(state.range(0));
  InterestMap map;
  Workload w(11);
  size_t before = HeapInUse();
  for (int i = 0; i < 100'000; ++i) map.Add(w.Filter(), w.Uniform(shards));
  double bytes_per_filter = double(HeapInUse() - before) / map.size();
  std::vector<std::string> topics = MakeTopics(12);
  ShardSet out;
  size_t i = 0, total = 0;
  for (auto _ : state) {
    map.ShardsFor(topics[i++ % kQueryCount], out);
    total += out.count();
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["shards_per_topic"] = double(total) / state.iterations();
  state.counters["filters"] = map.size();
  state.counters["bytes_per_filter"] = bytes_per_filter;
}
BENCHMARK(BM_InterestMap_ShardsFor100k)->Arg(8)->Arg(64)->Arg(256);

}  // namespace
}  // namespace shardmq::topic::bench

BENCHMARK_MAIN();
