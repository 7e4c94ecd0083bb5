#include "topic/levels.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "reference_matcher.h"
#include "spec_cases.h"

namespace shardmq::topic {
namespace {

std::vector<std::string> Levels(std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view level : TopicLevels(text)) out.emplace_back(level);
  return out;
}

using V = std::vector<std::string>;

TEST(TopicLevelsTest, EmptyLevelsAreLevels) {
  EXPECT_EQ(Levels("a/b/c"), (V{"a", "b", "c"}));
  EXPECT_EQ(Levels("a//b"), (V{"a", "", "b"}));
  EXPECT_EQ(Levels("/a"), (V{"", "a"}));
  EXPECT_EQ(Levels("a/"), (V{"a", ""}));
  EXPECT_EQ(Levels("/"), (V{"", ""}));
  EXPECT_EQ(Levels(""), (V{""}));
  EXPECT_EQ(Levels("$SYS/#"), (V{"$SYS", "#"}));
}

TEST(TopicLevelsTest, NextLevelWalksTheSameLevels) {
  for (std::string_view text : {"a/b/c", "a//b", "/a", "a/", "/", "", "x"}) {
    std::vector<std::string> walked;
    std::string_view rest = text;
    bool more = true;
    while (more) walked.emplace_back(NextLevel(rest, more));
    EXPECT_EQ(walked, Levels(text)) << text;
  }
}

TEST(FilterMatchesTest, FollowsEveryRuleOfSection47) {
  for (const auto& c : testing::kSpecCases) {
    EXPECT_EQ(FilterMatches(c.filter, c.topic), c.matches)
        << "filter \"" << c.filter << "\" topic \"" << c.topic << "\"";
    // The test's reference matcher must agree with the table too, or the
    // differential tests prove nothing.
    EXPECT_EQ(testing::ReferenceMatches(c.filter, c.topic), c.matches)
        << "reference: filter \"" << c.filter << "\" topic \"" << c.topic << "\"";
  }
}

TEST(HasWildcardTest, OnlyWholeLevelsCount) {
  EXPECT_TRUE(HasWildcard("a/+/b"));
  EXPECT_TRUE(HasWildcard("#"));
  EXPECT_TRUE(HasWildcard("a/#"));
  EXPECT_FALSE(HasWildcard("a/b"));
  EXPECT_FALSE(HasWildcard("a+/b#"));  // Not valid filters; shows levels are compared whole.
}

TEST(SharedSubscriptionTest, RecognisesAndSplitsShareFilters) {
  EXPECT_TRUE(IsSharedSubscription("$share/g/a/b"));
  EXPECT_FALSE(IsSharedSubscription("$SYS/a"));
  EXPECT_FALSE(IsSharedSubscription("share/g/a"));
  EXPECT_FALSE(IsSharedSubscription("$shared/g/a"));

  auto parsed = ParseSharedSubscription("$share/group1/sport/+/score");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->group, "group1");
  EXPECT_EQ(parsed->filter, "sport/+/score");

  parsed = ParseSharedSubscription("$share/g/#");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->group, "g");
  EXPECT_EQ(parsed->filter, "#");

  // The filter part keeps its own empty levels.
  parsed = ParseSharedSubscription("$share/g//a");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->filter, "/a");

  EXPECT_FALSE(ParseSharedSubscription("$share/g").has_value());
  EXPECT_FALSE(ParseSharedSubscription("$share//a").has_value());
  EXPECT_FALSE(ParseSharedSubscription("$share/g/").has_value());
  EXPECT_FALSE(ParseSharedSubscription("a/b").has_value());
}

}  // namespace
}  // namespace shardmq::topic
