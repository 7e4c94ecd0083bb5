#include "topic/topic_trie.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "spec_cases.h"

namespace shardmq::topic {
namespace {

using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

std::vector<std::string> MatchedFilters(TopicTrie<std::string>& trie, std::string_view topic) {
  std::vector<std::string> out;
  trie.Match(topic, [&](std::string& filter) { out.push_back(filter); });
  return out;
}

TEST(TopicTrieTest, FollowsEveryRuleOfSection47) {
  for (const auto& c : testing::kSpecCases) {
    TopicTrie<std::string> trie;
    trie.FindOrInsert(c.filter) = std::string(c.filter);
    EXPECT_EQ(MatchedFilters(trie, c.topic).size(), c.matches ? 1u : 0u)
        << "filter \"" << c.filter << "\" topic \"" << c.topic << "\"";
  }
}

TEST(TopicTrieTest, AllSpecFiltersInOneTrie) {
  // Same table with every filter in one trie: for each row, the row's filter
  // is reported for the row's topic exactly when the table says it matches.
  TopicTrie<std::string> trie;
  for (const auto& c : testing::kSpecCases) trie.FindOrInsert(c.filter) = std::string(c.filter);
  for (const auto& c : testing::kSpecCases) {
    std::vector<std::string> got = MatchedFilters(trie, c.topic);
    EXPECT_EQ(std::count(got.begin(), got.end(), c.filter), c.matches ? 1 : 0)
        << "filter \"" << c.filter << "\" topic \"" << c.topic << "\"";
  }
}

TEST(TopicTrieTest, ReportsEveryMatchingFilterOnce) {
  TopicTrie<std::string> trie;
  for (std::string_view f : {"a/b/c", "a/+/c", "a/#", "+/b/+", "#", "a/b", "+/+/+/+", "a/b/c/#"}) {
    trie.FindOrInsert(f) = std::string(f);
  }
  EXPECT_THAT(MatchedFilters(trie, "a/b/c"),
              UnorderedElementsAre("a/b/c", "a/+/c", "a/#", "+/b/+", "#", "a/b/c/#"));
  EXPECT_THAT(MatchedFilters(trie, "a"), UnorderedElementsAre("a/#", "#"));
  EXPECT_THAT(MatchedFilters(trie, "x/y"), UnorderedElementsAre("#"));
}

TEST(TopicTrieTest, FindOrInsertFindAndSize) {
  TopicTrie<int> trie;
  EXPECT_TRUE(trie.empty());
  trie.FindOrInsert("a/b") = 1;
  trie.FindOrInsert("a/+") = 2;
  trie.FindOrInsert("a/b") += 10;  // Same filter, same value.
  EXPECT_EQ(trie.size(), 2u);
  ASSERT_NE(trie.Find("a/b"), nullptr);
  EXPECT_EQ(*trie.Find("a/b"), 11);
  EXPECT_EQ(*trie.Find("a/+"), 2);
  // Find is exact: no wildcard matching, and intermediate nodes hold nothing.
  EXPECT_EQ(trie.Find("a/c"), nullptr);
  EXPECT_EQ(trie.Find("a"), nullptr);
  EXPECT_EQ(trie.Find("a/#"), nullptr);
}

TEST(TopicTrieTest, EraseReturnsWhetherTheFilterWasStored) {
  TopicTrie<int> trie;
  trie.FindOrInsert("a/b/c");
  EXPECT_FALSE(trie.Erase("a/b"));  // A node on the path, but no value.
  EXPECT_FALSE(trie.Erase("a/b/c/d"));
  EXPECT_FALSE(trie.Erase("x"));
  EXPECT_TRUE(trie.Erase("a/b/c"));
  EXPECT_FALSE(trie.Erase("a/b/c"));
  EXPECT_EQ(trie.size(), 0u);
}

TEST(TopicTrieTest, ErasePrunesSoMemoryFollowsLiveState) {
  TopicTrie<int> trie;
  std::vector<std::string> filters = {"a/b/c", "a/b",   "a/+/c", "a/#",    "#",        "+",
                                      "/",     "a//b/", "+/+/#", "$SYS/#", "x/y/z/w/v"};
  for (int i = 0; i < 40; ++i) filters.push_back("many/" + std::to_string(i) + "/leaf");
  for (const auto& f : filters) trie.FindOrInsert(f);
  EXPECT_GT(trie.node_count(), 0u);

  // Erasing a filter that shares a prefix keeps what the others need.
  ASSERT_TRUE(trie.Erase("a/b/c"));
  int hits = 0;
  trie.Match("a/b", [&](int&) { ++hits; });
  EXPECT_EQ(hits, 4);  // a/b, a/#, #, +/+/# (its '#' matches the parent level)
  EXPECT_NE(trie.Find("a/b"), nullptr);

  for (const auto& f : filters) trie.Erase(f);
  EXPECT_EQ(trie.size(), 0u);
  EXPECT_EQ(trie.node_count(), 0u);
  hits = 0;
  trie.Match("a/b/c", [&](int&) { ++hits; });
  EXPECT_EQ(hits, 0);
}

TEST(TopicTrieTest, NodeCountMatchesDistinctPrefixes) {
  TopicTrie<int> trie;
  trie.FindOrInsert("a/b/c");
  EXPECT_EQ(trie.node_count(), 3u);
  trie.FindOrInsert("a/b/d");
  EXPECT_EQ(trie.node_count(), 4u);
  trie.FindOrInsert("a/+/#");
  EXPECT_EQ(trie.node_count(), 6u);
  trie.Erase("a/b/c");
  EXPECT_EQ(trie.node_count(), 5u);
  trie.Erase("a/+/#");
  EXPECT_EQ(trie.node_count(), 3u);
}

TEST(TopicTrieTest, ManyChildrenUnderOneNodeStillWork) {
  // Crosses the switch from the linear child list to the hash map, and back
  // down through erases.
  TopicTrie<int> trie;
  for (int i = 0; i < 200; ++i) trie.FindOrInsert("dev/" + std::to_string(i)) = i;
  for (int i = 0; i < 200; ++i) {
    int seen = -1;
    trie.Match("dev/" + std::to_string(i), [&](int& v) { seen = v; });
    EXPECT_EQ(seen, i);
  }
  for (int i = 0; i < 200; i += 2) EXPECT_TRUE(trie.Erase("dev/" + std::to_string(i)));
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(trie.Find("dev/" + std::to_string(i)) != nullptr, i % 2 == 1) << i;
  }
  for (int i = 1; i < 200; i += 2) EXPECT_TRUE(trie.Erase("dev/" + std::to_string(i)));
  EXPECT_EQ(trie.node_count(), 0u);
}

TEST(TopicTrieTest, ForEachRebuildsEveryFilter) {
  TopicTrie<int> trie;
  std::vector<std::string> filters = {"a", "a/b",   "/",  "/a",     "a/",    "+",
                                      "#", "a/+/#", "//", "$SYS/#", "a//b/+"};
  for (const auto& f : filters) trie.FindOrInsert(f) = 1;
  std::vector<std::string> seen;
  trie.ForEach([&](std::string_view filter, int& v) {
    EXPECT_EQ(v, 1);
    seen.emplace_back(filter);
  });
  EXPECT_THAT(seen, UnorderedElementsAreArray(filters));
}

TEST(TopicTrieTest, ConstMatchSeesConstValues) {
  TopicTrie<int> trie;
  trie.FindOrInsert("a/+") = 7;
  const TopicTrie<int>& view = trie;
  int sum = 0;
  view.Match("a/b", [&](const int& v) { sum += v; });
  EXPECT_EQ(sum, 7);
}

}  // namespace
}  // namespace shardmq::topic
