// Differential tests: random filters and topic names over a small alphabet
// (so collisions and shared prefixes are common), with empty levels, '$'
// first levels and wildcards. Every matcher in src/topic must agree with
// tests/topic/reference_matcher.h on every pair.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "reference_matcher.h"
#include "topic/interest_map.h"
#include "topic/levels.h"
#include "topic/retained_index.h"
#include "topic/shard_set.h"
#include "topic/subscription_index.h"
#include "topic/topic_trie.h"

namespace shardmq::topic {
namespace {

using testing::ReferenceMatches;

class Generator {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  std::string Topic() {
    std::string out;
    int levels = Uniform(1, 5);
    for (int i = 0; i < levels; ++i) {
      if (i > 0) out.push_back('/');
      if (i == 0 && Uniform(0, 7) == 0) {
        out += "$a";
      } else {
        out += Pick({"a", "b", "", "ab"});
      }
    }
    return out;
  }

  std::string Filter() {
    std::string out;
    int levels = Uniform(1, 5);
    for (int i = 0; i < levels; ++i) {
      if (i > 0) out.push_back('/');
      if (i == levels - 1 && Uniform(0, 4) == 0) {
        out += "#";
      } else if (i == 0 && Uniform(0, 7) == 0) {
        out += "$a";
      } else {
        out += Pick({"a", "b", "", "ab", "+", "+"});
      }
    }
    return out;
  }

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

 private:
  std::string Pick(std::initializer_list<const char*> options) {
    return options.begin()[Uniform(0, static_cast<int>(options.size()) - 1)];
  }

  std::mt19937 rng_;
};

TEST(DifferentialTest, FilterMatchesAgreesWithReference) {
  Generator gen(1);
  for (int i = 0; i < 20000; ++i) {
    std::string f = gen.Filter();
    std::string t = gen.Topic();
    ASSERT_EQ(FilterMatches(f, t), ReferenceMatches(f, t)) << f << " vs " << t;
  }
}

TEST(DifferentialTest, TrieMatchAgreesWithReference) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    Generator gen(seed);
    TopicTrie<std::string> trie;
    std::set<std::string> filters;
    for (int i = 0; i < 150; ++i) {
      std::string f = gen.Filter();
      trie.FindOrInsert(f) = f;
      filters.insert(f);
    }
    auto check = [&] {
      ASSERT_EQ(trie.size(), filters.size());
      for (int i = 0; i < 300; ++i) {
        std::string t = gen.Topic();
        std::multiset<std::string> got;
        trie.Match(t, [&](std::string& f) { got.insert(f); });
        std::multiset<std::string> want;
        for (const auto& f : filters) {
          if (ReferenceMatches(f, t)) want.insert(f);
        }
        ASSERT_EQ(got, want) << "seed " << seed << " topic " << t;
      }
    };
    check();
    // Erase a random half, check again, then erase the rest: nothing left.
    std::vector<std::string> all(filters.begin(), filters.end());
    for (const auto& f : all) {
      if (gen.Uniform(0, 1) == 0) {
        ASSERT_TRUE(trie.Erase(f));
        filters.erase(f);
      }
    }
    check();
    for (const auto& f : all) trie.Erase(f);
    EXPECT_EQ(trie.size(), 0u);
    EXPECT_EQ(trie.node_count(), 0u);
  }
}

TEST(DifferentialTest, InterestMapAgreesWithReference) {
  for (uint32_t seed = 100; seed < 110; ++seed) {
    Generator gen(seed);
    InterestMap map;
    std::set<std::pair<std::string, uint32_t>> entries;  // (filter, shard)
    for (int i = 0; i < 300; ++i) {
      std::string f = gen.Filter();
      // Mostly < 64 shards, sometimes beyond to exercise the wide set.
      uint32_t shard = gen.Uniform(0, 9) == 0 ? gen.Uniform(64, 1023) : gen.Uniform(0, 7);
      map.Add(f, shard);
      entries.emplace(f, shard);
    }
    auto check = [&] {
      for (int i = 0; i < 300; ++i) {
        std::string t = gen.Topic();
        ShardSet want;
        for (const auto& [f, shard] : entries) {
          if (ReferenceMatches(f, t)) want.Add(shard);
        }
        ASSERT_EQ(map.ShardsFor(t), want) << "seed " << seed << " topic " << t;
      }
    };
    check();
    std::vector<std::pair<std::string, uint32_t>> all(entries.begin(), entries.end());
    for (const auto& e : all) {
      if (gen.Uniform(0, 2) != 0) {
        ASSERT_TRUE(map.Remove(e.first, e.second));
        entries.erase(e);
      }
    }
    check();
    for (const auto& e : all) map.Remove(e.first, e.second);
    EXPECT_EQ(map.size(), 0u);
    EXPECT_EQ(map.node_count(), 0u);
  }
}

TEST(DifferentialTest, InterestMapSharedGroupsAgreeWithReference) {
  Generator gen(7);
  InterestMap map;
  std::set<std::tuple<std::string, std::string, uint32_t>> entries;  // (group, filter, shard)
  for (int i = 0; i < 300; ++i) {
    std::string group = gen.Uniform(0, 1) ? "g" : "h";
    std::string f = gen.Filter();
    if (f.empty()) continue;  // "$share/g/" is not a valid filter.
    uint32_t shard = gen.Uniform(0, 7);
    map.Add("$share/" + group + "/" + f, shard);
    entries.emplace(group, f, shard);
  }
  for (int i = 0; i < 1000; ++i) {
    std::string t = gen.Topic();
    std::set<std::tuple<std::string, std::string, uint32_t>> got, want;
    map.MatchShared(t, [&](std::string_view g, std::string_view f, const ShardSet& shards) {
      shards.ForEach([&](uint32_t s) { got.emplace(std::string(g), std::string(f), s); });
    });
    for (const auto& e : entries) {
      if (ReferenceMatches(std::get<1>(e), t)) want.insert(e);
    }
    ASSERT_EQ(got, want) << t;
    // The plain fan-out never includes shared-only interest.
    EXPECT_TRUE(map.ShardsFor(t).empty());
  }
}

TEST(DifferentialTest, RetainedMatchFilterAgreesWithReference) {
  for (uint32_t seed = 200; seed < 210; ++seed) {
    Generator gen(seed);
    RetainedIndex<std::string> index;
    std::set<std::string> topics;
    for (int i = 0; i < 200; ++i) {
      std::string t = gen.Topic();
      index.Set(t, t);
      topics.insert(t);
    }
    auto check = [&] {
      ASSERT_EQ(index.size(), topics.size());
      for (int i = 0; i < 300; ++i) {
        std::string f = gen.Filter();
        std::multiset<std::string> got;
        index.MatchFilter(f, [&](std::string_view topic, std::string& message) {
          ASSERT_EQ(topic, message);
          got.emplace(topic);
        });
        std::multiset<std::string> want;
        for (const auto& t : topics) {
          if (ReferenceMatches(f, t)) want.insert(t);
        }
        ASSERT_EQ(got, want) << "seed " << seed << " filter " << f;
      }
    };
    check();
    std::vector<std::string> all(topics.begin(), topics.end());
    for (const auto& t : all) {
      if (gen.Uniform(0, 1) == 0) {
        ASSERT_TRUE(index.Erase(t));
        topics.erase(t);
      }
    }
    check();
    for (const auto& t : all) index.Erase(t);
    EXPECT_EQ(index.size(), 0u);
    EXPECT_EQ(index.node_count(), 0u);
  }
}

}  // namespace
}  // namespace shardmq::topic

namespace shardmq::topic {
namespace {

// SubscriptionIndex against a plain model: (subscriber, filter) -> qos. Random
// subscribes, re-subscribes and unsubscribes; every result flag and every
// Match must agree with what the model implies.
TEST(DifferentialTest, SubscriptionIndexAgreesWithAModel) {
  Generator gen(300);
  SubscriptionIndex index;
  std::map<std::pair<SubscriberId, std::string>, int> model;
  auto subscribers_on = [&](const std::string& filter) {
    int n = 0;
    for (const auto& [key, qos] : model) n += key.second == filter;
    return n;
  };
  std::vector<std::string> filters;
  for (int i = 0; i < 60; ++i) filters.push_back(gen.Filter());
  for (int step = 0; step < 6000; ++step) {
    SubscriberId s = gen.Uniform(0, 15);
    const std::string& f = filters[gen.Uniform(0, static_cast<int>(filters.size()) - 1)];
    auto key = std::make_pair(s, f);
    if (gen.Uniform(0, 2) != 0) {
      int qos = gen.Uniform(0, 2);
      bool existed = model.count(key) > 0;
      bool first = subscribers_on(f) == 0;
      SubscribeResult r = index.Subscribe(s, f, {.qos = static_cast<uint8_t>(qos)});
      ASSERT_EQ(r.replaced_existing, existed);
      ASSERT_EQ(r.filter_became_active, first);
      model[key] = qos;
    } else {
      bool existed = model.erase(key) > 0;
      UnsubscribeResult r = index.Unsubscribe(s, f);
      ASSERT_EQ(r.existed, existed);
      ASSERT_EQ(r.filter_became_inactive, existed && subscribers_on(f) == 0);
    }
    if (step % 50 == 0) {
      std::string t = gen.Topic();
      std::multiset<std::pair<SubscriberId, int>> got, want;
      index.Match(t,
                  [&](SubscriberId sub, const SubscriptionOptions& o) { got.emplace(sub, o.qos); });
      for (const auto& [k, qos] : model) {
        if (ReferenceMatches(k.second, t)) want.emplace(k.first, qos);
      }
      ASSERT_EQ(got, want) << "step " << step << " topic " << t;
      ASSERT_EQ(index.subscription_count(), model.size());
    }
  }
  for (const auto& [key, qos] : model) index.Unsubscribe(key.first, key.second);
  EXPECT_EQ(index.subscription_count(), 0u);
  EXPECT_EQ(index.node_count(), 0u);
}

}  // namespace
}  // namespace shardmq::topic
