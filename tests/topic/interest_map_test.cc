#include "topic/interest_map.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "topic/shard_set.h"

namespace shardmq::topic {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

std::vector<uint32_t> Members(const ShardSet& s) {
  std::vector<uint32_t> out;
  s.ForEach([&](uint32_t shard) { out.push_back(shard); });
  return out;
}

TEST(ShardSetTest, SmallShardsStayInline) {
  ShardSet s;
  EXPECT_TRUE(s.empty());
  EXPECT_TRUE(s.Add(0));
  EXPECT_TRUE(s.Add(63));
  EXPECT_FALSE(s.Add(63));
  EXPECT_EQ(s.count(), 2u);
  EXPECT_EQ(s.low_word(), (uint64_t{1} << 63) | 1);
  EXPECT_TRUE(s.Contains(63));
  EXPECT_FALSE(s.Contains(64));
  EXPECT_FALSE(s.Remove(64));  // Not there, nothing allocated.
  EXPECT_TRUE(s.Remove(0));
  EXPECT_THAT(Members(s), ElementsAre(63));
}

TEST(ShardSetTest, CountsZeroOneAndManyMembersPerWord) {
  ShardSet s;
  EXPECT_EQ(s.count(), 0u);
  s.Add(63);
  EXPECT_EQ(s.count(), 1u);
  for (uint32_t shard = 0; shard < 64; shard += 3) s.Add(shard);
  EXPECT_EQ(s.count(), 22u);  // 0, 3, ..., 63 (63 was already in)
  s.Add(64);
  EXPECT_EQ(s.count(), 23u);
  for (uint32_t shard = 100; shard < 110; ++shard) s.Add(shard);
  EXPECT_EQ(s.count(), 33u);
  s.Clear();
  EXPECT_EQ(s.count(), 0u);
}

TEST(ShardSetTest, UpTo1024Shards) {
  ShardSet s;
  for (uint32_t shard : {1u, 64u, 500u, 1023u}) EXPECT_TRUE(s.Add(shard));
  EXPECT_THAT(Members(s), ElementsAre(1, 64, 500, 1023));
  EXPECT_EQ(s.count(), 4u);
  ShardSet copy = s;
  EXPECT_EQ(copy, s);
  copy.Remove(500);
  EXPECT_FALSE(copy == s);
  ShardSet u;
  u.Add(2);
  u |= s;
  EXPECT_THAT(Members(u), ElementsAre(1, 2, 64, 500, 1023));
  for (uint32_t shard : {1u, 64u, 500u, 1023u}) EXPECT_TRUE(s.Remove(shard));
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s, ShardSet());  // Allocated-but-zero equals never-allocated.
  copy = ShardSet();
  EXPECT_TRUE(copy.empty());
}

TEST(ShardSetDeathTest, ShardsBeyondTheLimitAreABug) {
  ShardSet s;
  EXPECT_FALSE(s.Remove(ShardSet::kMaxShards));
  EXPECT_FALSE(s.Contains(ShardSet::kMaxShards + 5));
  EXPECT_DEATH(s.Add(ShardSet::kMaxShards), "");
}

TEST(InterestMapTest, ShardsForIsTheUnionOverMatchingFilters) {
  InterestMap map;
  EXPECT_TRUE(map.Add("a/b", 1));
  EXPECT_FALSE(map.Add("a/b", 1));  // Idempotent.
  map.Add("a/+", 2);
  map.Add("#", 3);
  map.Add("x/#", 4);
  map.Add("a/b", 700);
  EXPECT_THAT(Members(map.ShardsFor("a/b")), ElementsAre(1, 2, 3, 700));
  EXPECT_THAT(Members(map.ShardsFor("a/c")), ElementsAre(2, 3));
  EXPECT_THAT(Members(map.ShardsFor("x")), ElementsAre(3, 4));
  EXPECT_THAT(Members(map.ShardsFor("$SYS/x")), ElementsAre());  // '#' skips '$'.
  EXPECT_EQ(map.size(), 4u);
}

TEST(InterestMapTest, RemoveForgetsFiltersNoShardWants) {
  InterestMap map;
  map.Add("a/b", 1);
  map.Add("a/b", 2);
  map.Add("a/+/c", 1);
  EXPECT_TRUE(map.Remove("a/b", 1));
  EXPECT_FALSE(map.Remove("a/b", 1));
  EXPECT_FALSE(map.Remove("never", 1));
  EXPECT_THAT(Members(map.ShardsFor("a/b")), ElementsAre(2));
  EXPECT_TRUE(map.Remove("a/b", 2));
  EXPECT_EQ(map.Find("a/b"), nullptr);
  EXPECT_TRUE(map.ShardsFor("a/b").empty());
  EXPECT_TRUE(map.Remove("a/+/c", 1));
  EXPECT_EQ(map.size(), 0u);
  EXPECT_EQ(map.node_count(), 0u);
}

TEST(InterestMapTest, SharedGroupsAreKeptApartFromPlainFilters) {
  InterestMap map;
  map.Add("$share/g1/a/+", 1);
  map.Add("$share/g1/a/+", 2);
  map.Add("$share/g2/a/+", 3);
  map.Add("$share/g1/a/#", 4);
  map.Add("a/+", 9);
  // Shared groups never widen the plain fan-out.
  EXPECT_THAT(Members(map.ShardsFor("a/b")), ElementsAre(9));

  std::vector<std::tuple<std::string, std::string, std::vector<uint32_t>>> groups;
  map.MatchShared("a/b",
                  [&](std::string_view group, std::string_view filter, const ShardSet& shards) {
                    groups.emplace_back(std::string(group), std::string(filter), Members(shards));
                  });
  using G = std::tuple<std::string, std::string, std::vector<uint32_t>>;
  EXPECT_THAT(groups, UnorderedElementsAre(G{"g1", "a/+", {1, 2}}, G{"g2", "a/+", {3}},
                                           G{"g1", "a/#", {4}}));
  ASSERT_NE(map.Find("$share/g1/a/+"), nullptr);
  EXPECT_THAT(Members(*map.Find("$share/g1/a/+")), ElementsAre(1, 2));
  EXPECT_EQ(map.Find("$share/g3/a/+"), nullptr);
  EXPECT_EQ(map.size(), 4u);

  EXPECT_TRUE(map.Remove("$share/g1/a/+", 1));
  EXPECT_TRUE(map.Remove("$share/g1/a/+", 2));
  EXPECT_FALSE(map.Remove("$share/g1/a/+", 2));
  EXPECT_TRUE(map.Remove("$share/g2/a/+", 3));
  EXPECT_TRUE(map.Remove("$share/g1/a/#", 4));
  EXPECT_TRUE(map.Remove("a/+", 9));
  int calls = 0;
  map.MatchShared("a/b", [&](auto&&...) { ++calls; });
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(map.size(), 0u);
  EXPECT_EQ(map.node_count(), 0u);
}

TEST(InterestMapTest, ReusesTheCallersSet) {
  InterestMap map;
  map.Add("a", 100);
  ShardSet out;
  out.Add(5);
  map.ShardsFor("a", out);
  EXPECT_THAT(Members(out), ElementsAre(100));  // Cleared first.
  map.ShardsFor("b", out);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace shardmq::topic
