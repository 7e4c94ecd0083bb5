#include "topic/retained_index.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "spec_cases.h"

namespace shardmq::topic {
namespace {

using ::testing::UnorderedElementsAre;

std::vector<std::string> Matched(RetainedIndex<std::string>& index, std::string_view filter) {
  std::vector<std::string> out;
  index.MatchFilter(filter, [&](std::string_view topic, std::string& message) {
    EXPECT_EQ(topic, message);  // Each test stores the topic as its message.
    out.emplace_back(topic);
  });
  return out;
}

TEST(RetainedIndexTest, FollowsEveryRuleOfSection47) {
  for (const auto& c : testing::kSpecCases) {
    RetainedIndex<std::string> index;
    index.Set(c.topic, std::string(c.topic));
    EXPECT_EQ(Matched(index, c.filter).size(), c.matches ? 1u : 0u)
        << "filter \"" << c.filter << "\" topic \"" << c.topic << "\"";
  }
}

TEST(RetainedIndexTest, SetReplacesFindAndErase) {
  RetainedIndex<std::string> index;
  EXPECT_FALSE(index.Set("a/b", "one"));
  EXPECT_TRUE(index.Set("a/b", "two"));
  EXPECT_EQ(index.size(), 1u);
  ASSERT_NE(index.Find("a/b"), nullptr);
  EXPECT_EQ(*index.Find("a/b"), "two");
  EXPECT_EQ(index.Find("a"), nullptr);
  EXPECT_EQ(index.Find("a/b/c"), nullptr);
  EXPECT_FALSE(index.Erase("a"));
  EXPECT_TRUE(index.Erase("a/b"));
  EXPECT_FALSE(index.Erase("a/b"));
  EXPECT_EQ(index.size(), 0u);
  EXPECT_EQ(index.node_count(), 0u);
}

TEST(RetainedIndexTest, WildcardFiltersReturnEveryRetainedTopicTheyMatch) {
  RetainedIndex<std::string> index;
  for (std::string_view t :
       {"sport", "sport/tennis", "sport/tennis/player1", "sport/tennis/player2",
        "sport/golf/player1", "sport/", "/sport", "$SYS/uptime", "$SYS", "news/$x"}) {
    index.Set(t, std::string(t));
  }
  EXPECT_THAT(Matched(index, "sport/tennis/+"),
              UnorderedElementsAre("sport/tennis/player1", "sport/tennis/player2"));
  EXPECT_THAT(Matched(index, "sport/#"),
              UnorderedElementsAre("sport", "sport/tennis", "sport/tennis/player1",
                                   "sport/tennis/player2", "sport/golf/player1", "sport/"));
  EXPECT_THAT(Matched(index, "sport/+"), UnorderedElementsAre("sport/tennis", "sport/"));
  EXPECT_THAT(Matched(index, "+/+/player1"),
              UnorderedElementsAre("sport/tennis/player1", "sport/golf/player1"));
  EXPECT_THAT(Matched(index, "+"), UnorderedElementsAre("sport"));
  EXPECT_THAT(Matched(index, "/+"), UnorderedElementsAre("/sport"));
  EXPECT_THAT(Matched(index, "$SYS/#"), UnorderedElementsAre("$SYS", "$SYS/uptime"));
  EXPECT_THAT(Matched(index, "news/+"), UnorderedElementsAre("news/$x"));
  // '#' alone returns everything except the '$' topics.
  EXPECT_EQ(Matched(index, "#").size(), 8u);
  EXPECT_THAT(Matched(index, "sport/tennis/player1"), UnorderedElementsAre("sport/tennis/player1"));
  EXPECT_THAT(Matched(index, "nothing/#"), UnorderedElementsAre());
}

TEST(RetainedIndexTest, ErasePrunesSoMemoryFollowsLiveState) {
  RetainedIndex<std::string> index;
  std::vector<std::string> topics = {"a/b/c", "a/b", "a", "/", "a//b/", "$SYS/x", "x/y/z/w"};
  for (int i = 0; i < 50; ++i) topics.push_back("dev/" + std::to_string(i) + "/temp");
  for (const auto& t : topics) index.Set(t, t);
  EXPECT_TRUE(index.Erase("a/b"));
  EXPECT_NE(index.Find("a/b/c"), nullptr);  // Its node stays: a child needs it.
  EXPECT_THAT(Matched(index, "a/#"), UnorderedElementsAre("a", "a/b/c", "a//b/"));
  for (const auto& t : topics) index.Erase(t);
  EXPECT_EQ(index.size(), 0u);
  EXPECT_EQ(index.node_count(), 0u);
}

TEST(RetainedIndexTest, StoresMoveOnlyMessages) {
  RetainedIndex<std::unique_ptr<int>> index;
  index.Set("a", std::make_unique<int>(1));
  index.Set("a", std::make_unique<int>(2));
  int seen = 0;
  index.MatchFilter("#", [&](std::string_view, std::unique_ptr<int>& m) { seen = *m; });
  EXPECT_EQ(seen, 2);
}

TEST(RetainedIndexTest, ForEachVisitsEveryTopicIncludingDollar) {
  RetainedIndex<std::string> index;
  for (std::string_view t : {"a", "/a", "a/", "$SYS/x"}) index.Set(t, std::string(t));
  std::vector<std::string> seen;
  index.ForEach([&](std::string_view topic, std::string& m) {
    EXPECT_EQ(topic, m);
    seen.emplace_back(topic);
  });
  EXPECT_THAT(seen, UnorderedElementsAre("a", "/a", "a/", "$SYS/x"));
}

}  // namespace
}  // namespace shardmq::topic
