// Topic name/filter and shared-subscription syntax (MQTT 5 sections 4.7,
// 4.8.2), including caller-chosen limits.
#include "mqtt/topic_validation.h"

#include <string>

#include "gtest/gtest.h"

namespace shardmq::mqtt {
namespace {

TEST(TopicNameTest, AcceptsSpecExamples) {
  EXPECT_EQ(ValidateTopicName("sport/tennis/player1"), TopicError::kOk);
  EXPECT_EQ(ValidateTopicName("/finance"), TopicError::kOk);
  EXPECT_EQ(ValidateTopicName("/"), TopicError::kOk);
  EXPECT_EQ(ValidateTopicName("$SYS/broker/uptime"), TopicError::kOk);
  EXPECT_EQ(ValidateTopicName(" "), TopicError::kOk);
}

// [MQTT-4.7.3-1]: at least one character.
TEST(TopicNameTest, MQTT_4_7_3_1_RejectsEmpty) {
  EXPECT_EQ(ValidateTopicName(""), TopicError::kEmpty);
}

// [MQTT-3.3.2-2] / [MQTT-4.7.0-1]: no wildcards in a topic name.
TEST(TopicNameTest, MQTT_3_3_2_2_RejectsWildcards) {
  EXPECT_EQ(ValidateTopicName("a/+"), TopicError::kWildcardInName);
  EXPECT_EQ(ValidateTopicName("#"), TopicError::kWildcardInName);
  EXPECT_EQ(ValidateTopicName("a/b#"), TopicError::kWildcardInName);
}

// [MQTT-4.7.3-3]: at most 65535 bytes; the caller may lower the limit.
TEST(TopicNameTest, MQTT_4_7_3_3_LengthLimits) {
  EXPECT_EQ(ValidateTopicName(std::string(65535, 'a')), TopicError::kOk);
  EXPECT_EQ(ValidateTopicName(std::string(65536, 'a')), TopicError::kTooLong);
  TopicLimits limits{.max_length = 10};
  EXPECT_EQ(ValidateTopicName(std::string(10, 'a'), limits), TopicError::kOk);
  EXPECT_EQ(ValidateTopicName(std::string(11, 'a'), limits), TopicError::kTooLong);
}

TEST(TopicNameTest, LevelLimit) {
  TopicLimits limits{.max_levels = 3};
  EXPECT_EQ(ValidateTopicName("a/b/c", limits), TopicError::kOk);
  EXPECT_EQ(ValidateTopicName("a/b/c/d", limits), TopicError::kTooManyLevels);
  EXPECT_EQ(ValidateTopicFilter("a/+/#", limits), TopicError::kOk);
  EXPECT_EQ(ValidateTopicFilter("a/+/c/#", limits), TopicError::kTooManyLevels);
}

// ValidateTopicName counts levels eight bytes at a time: every position of a
// '/' in a word, runs of them, and neighbours one below it ('.', 0x01) that a
// borrow-based byte test would miscount, all against a plain count.
TEST(TopicNameTest, LevelLimitMatchesPlainCountAtEveryPosition) {
  const std::string alphabet{'/', '.', '/', '\x01', 'a', '\xC3', '\xA9', '0'};
  for (size_t len = 1; len <= 40; ++len) {
    for (size_t seed = 0; seed < 64; ++seed) {
      std::string topic;
      for (size_t i = 0; i < len; ++i)
        topic += alphabet[(i * 7 + seed * 13 + i * i * seed) % alphabet.size()];
      const size_t levels = TopicLevelCount(topic);
      TopicLimits exact{.max_levels = levels};
      TopicLimits below{.max_levels = levels - 1};
      if (levels == 1) continue;  // max_levels 0 means unlimited
      EXPECT_EQ(ValidateTopicName(topic, exact), TopicError::kOk) << len << " " << seed;
      EXPECT_EQ(ValidateTopicName(topic, below), TopicError::kTooManyLevels) << len << " " << seed;
    }
  }
  EXPECT_EQ(ValidateTopicName("abcdefgh/ijklmnop+", TopicLimits{}), TopicError::kWildcardInName);
  EXPECT_EQ(ValidateTopicName("abcdefg#", TopicLimits{}), TopicError::kWildcardInName);
}

// Names of 8 bytes or more are first checked one word at a time (the last
// word overlapping): a NUL, a wildcard, a valid or a broken UTF-8 sequence at
// every position, including the overlapped tail, still gets the right answer.
TEST(TopicNameTest, WordAtATimeCheckSeesEveryPosition) {
  const TopicLimits utf8{.check_utf8 = true};
  for (size_t len = 8; len <= 40; ++len) {
    for (size_t pos = 0; pos < len; ++pos) {
      std::string topic(len, 'a');
      topic[pos] = '\0';
      EXPECT_EQ(ValidateTopicName(topic, utf8), TopicError::kInvalidUtf8) << len << " " << pos;
      topic[pos] = '+';
      EXPECT_EQ(ValidateTopicName(topic, utf8), TopicError::kWildcardInName) << len << " " << pos;
      topic[pos] = '#';
      EXPECT_EQ(ValidateTopicName(topic, utf8), TopicError::kWildcardInName) << len << " " << pos;
      topic[pos] = '\xC3';
      EXPECT_EQ(ValidateTopicName(topic, utf8), TopicError::kInvalidUtf8) << len << " " << pos;
      if (pos + 1 < len) {
        topic[pos + 1] = '\xA9';  // U+00E9
        EXPECT_EQ(ValidateTopicName(topic, utf8), TopicError::kOk) << len << " " << pos;
      }
    }
  }
}

TEST(TopicNameTest, OptionalUtf8Check) {
  TopicLimits limits{.check_utf8 = true};
  EXPECT_EQ(ValidateTopicName("caf\xC3\xA9", limits), TopicError::kOk);
  EXPECT_EQ(ValidateTopicName("caf\xC3", limits), TopicError::kInvalidUtf8);
  EXPECT_EQ(ValidateTopicFilter("a/\xED\xA0\x80/#", limits), TopicError::kInvalidUtf8);
}

TEST(TopicLevelCountTest, CountsSeparators) {
  EXPECT_EQ(TopicLevelCount(""), 1u);
  EXPECT_EQ(TopicLevelCount("a"), 1u);
  EXPECT_EQ(TopicLevelCount("/"), 2u);
  EXPECT_EQ(TopicLevelCount("a/b/c"), 3u);
  EXPECT_EQ(TopicLevelCount("/finance"), 2u);
  EXPECT_EQ(TopicLevelCount("a//b/"), 4u);
}

// 4.7.1: the examples of valid filters.
TEST(TopicFilterTest, AcceptsSpecExamples) {
  for (const char* f : {"sport/tennis/player1/#", "sport/#", "#", "+", "+/tennis/#",
                        "sport/+/player1", "/+", "+/+", "sport/+", "a//b", "/", "$SYS/#"}) {
    EXPECT_EQ(ValidateTopicFilter(f), TopicError::kOk) << f;
  }
}

// [MQTT-4.7.1-1]: '#' only alone and last.
TEST(TopicFilterTest, MQTT_4_7_1_1_MultiLevelWildcardPlacement) {
  for (const char* f : {"sport/tennis#", "sport/tennis/#/ranking", "#/", "a#", "##", "a/#b"}) {
    EXPECT_EQ(ValidateTopicFilter(f), TopicError::kBadMultiLevelWildcard) << f;
  }
}

// [MQTT-4.7.1-2]: '+' must occupy a whole level.
TEST(TopicFilterTest, MQTT_4_7_1_2_SingleLevelWildcardPlacement) {
  for (const char* f : {"sport+", "+a", "a/b+/c", "++", "a/+b"}) {
    EXPECT_EQ(ValidateTopicFilter(f), TopicError::kBadSingleLevelWildcard) << f;
  }
}

TEST(TopicFilterTest, RejectsEmptyAndTooLong) {
  EXPECT_EQ(ValidateTopicFilter(""), TopicError::kEmpty);
  EXPECT_EQ(ValidateTopicFilter(std::string(65536, 'a')), TopicError::kTooLong);
}

TEST(SharedSubscriptionTest, ParsesGroupAndFilter) {
  SharedSubscription s;
  ASSERT_EQ(ParseSharedSubscription("$share/consumer1/sport/tennis/+", {}, &s), TopicError::kOk);
  EXPECT_EQ(s.group, "consumer1");
  EXPECT_EQ(s.filter, "sport/tennis/+");
  ASSERT_EQ(ParseSharedSubscription("$share/g/#", {}, &s), TopicError::kOk);
  EXPECT_EQ(s.filter, "#");
  ASSERT_EQ(ParseSharedSubscription("$share/g//", {}, &s), TopicError::kOk);
  EXPECT_EQ(s.filter, "/");
  EXPECT_TRUE(IsSharedSubscription("$share/g/a"));
  EXPECT_FALSE(IsSharedSubscription("$share"));
  EXPECT_FALSE(IsSharedSubscription("$shared/g/a"));
  EXPECT_FALSE(IsSharedSubscription("a/$share/g"));
}

// [MQTT-4.8.2-1]: ShareName at least one character.
TEST(SharedSubscriptionTest, MQTT_4_8_2_1_EmptyGroup) {
  EXPECT_EQ(ValidateSubscriptionFilter("$share//a"), TopicError::kBadSharedGroup);
}

// [MQTT-4.8.2-2]: ShareName has no '/', '+', '#', and a filter follows it.
TEST(SharedSubscriptionTest, MQTT_4_8_2_2_GroupCharactersAndFilter) {
  EXPECT_EQ(ValidateSubscriptionFilter("$share/g+/a"), TopicError::kBadSharedGroup);
  EXPECT_EQ(ValidateSubscriptionFilter("$share/#/a"), TopicError::kBadSharedGroup);
  EXPECT_EQ(ValidateSubscriptionFilter("$share/+"), TopicError::kBadSharedGroup);
  EXPECT_EQ(ValidateSubscriptionFilter("$share/g"), TopicError::kBadSharedFilter);
  EXPECT_EQ(ValidateSubscriptionFilter("$share/g/"), TopicError::kBadSharedFilter);
  EXPECT_EQ(ValidateSubscriptionFilter("$share/g/a#"), TopicError::kBadMultiLevelWildcard);
}

TEST(SharedSubscriptionTest, LimitsApplyToInnerFilter) {
  TopicLimits limits{.max_levels = 2};
  EXPECT_EQ(ValidateSubscriptionFilter("$share/g/a/b", limits), TopicError::kOk);
  EXPECT_EQ(ValidateSubscriptionFilter("$share/g/a/b/c", limits), TopicError::kTooManyLevels);
  // Without "$share/" interpretation it is just a 3-level filter.
  EXPECT_EQ(ValidateTopicFilter("$share/g/a", limits), TopicError::kTooManyLevels);
}

TEST(TopicErrorNameTest, NamesEveryError) {
  EXPECT_STREQ(TopicErrorName(TopicError::kOk), "ok");
  EXPECT_STREQ(TopicErrorName(TopicError::kWildcardInName), "wildcard in topic name");
}

}  // namespace
}  // namespace shardmq::mqtt
