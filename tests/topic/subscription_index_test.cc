#include "topic/subscription_index.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace shardmq::topic {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// subscriber -> qos of every delivery Match reports.
std::vector<std::pair<SubscriberId, int>> Deliveries(const SubscriptionIndex& index,
                                                     std::string_view topic) {
  std::vector<std::pair<SubscriberId, int>> out;
  index.Match(topic,
              [&](SubscriberId s, const SubscriptionOptions& o) { out.emplace_back(s, o.qos); });
  return out;
}

TEST(SubscriptionIndexTest, SubscribeReportsTheFirstSubscriberOnAFilter) {
  SubscriptionIndex index;
  SubscribeResult r = index.Subscribe(1, "a/+", {.qos = 1});
  EXPECT_TRUE(r.filter_became_active);
  EXPECT_FALSE(r.replaced_existing);
  r = index.Subscribe(2, "a/+", {.qos = 0});
  EXPECT_FALSE(r.filter_became_active);
  EXPECT_FALSE(r.replaced_existing);
  EXPECT_THAT(Deliveries(index, "a/b"), UnorderedElementsAre(Pair(1, 1), Pair(2, 0)));
  EXPECT_EQ(index.subscription_count(), 2u);
  EXPECT_EQ(index.filter_count(), 1u);
}

TEST(SubscriptionIndexTest, ResubscribingReplacesTheOptions) {
  // [MQTT-3.8.4-3]: same subscriber, same filter -> one subscription, new options.
  SubscriptionIndex index;
  index.Subscribe(1, "a/b", {.qos = 0});
  SubscribeResult r = index.Subscribe(
      1, "a/b", {.qos = 2, .no_local = true, .retain_handling = 1, .subscription_id = 7});
  EXPECT_TRUE(r.replaced_existing);
  EXPECT_FALSE(r.filter_became_active);
  EXPECT_THAT(Deliveries(index, "a/b"), ElementsAre(Pair(1, 2)));
  const SubscriptionOptions* o = index.FindSubscription(1, "a/b");
  ASSERT_NE(o, nullptr);
  EXPECT_TRUE(o->no_local);
  EXPECT_EQ(o->retain_handling, 1);
  EXPECT_EQ(o->subscription_id, 7u);
  EXPECT_EQ(index.subscription_count(), 1u);
}

TEST(SubscriptionIndexTest, UnsubscribeReportsTheLastSubscriberLeaving) {
  SubscriptionIndex index;
  index.Subscribe(1, "a/#", {});
  index.Subscribe(2, "a/#", {});
  UnsubscribeResult u = index.Unsubscribe(1, "a/#");
  EXPECT_TRUE(u.existed);
  EXPECT_FALSE(u.filter_became_inactive);
  u = index.Unsubscribe(1, "a/#");
  EXPECT_FALSE(u.existed);
  EXPECT_FALSE(u.filter_became_inactive);
  u = index.Unsubscribe(3, "never/subscribed");
  EXPECT_FALSE(u.existed);
  u = index.Unsubscribe(2, "a/#");
  EXPECT_TRUE(u.existed);
  EXPECT_TRUE(u.filter_became_inactive);
  EXPECT_THAT(Deliveries(index, "a/b"), IsEmpty());
  EXPECT_EQ(index.subscription_count(), 0u);
  EXPECT_EQ(index.filter_count(), 0u);
  EXPECT_EQ(index.node_count(), 0u);
  // And 0 -> 1 again after that.
  EXPECT_TRUE(index.Subscribe(2, "a/#", {}).filter_became_active);
}

TEST(SubscriptionIndexTest, OverlappingFiltersReportOncePerFilter) {
  SubscriptionIndex index;
  index.Subscribe(1, "a/+", {.qos = 0});
  index.Subscribe(1, "a/#", {.qos = 1});
  index.Subscribe(2, "a/b", {.qos = 2});
  EXPECT_THAT(Deliveries(index, "a/b"), UnorderedElementsAre(Pair(1, 0), Pair(1, 1), Pair(2, 2)));
  EXPECT_THAT(Deliveries(index, "a"), ElementsAre(Pair(1, 1)));
}

TEST(SubscriptionIndexTest, CrowdedFilterChurn) {
  // Past the list's index threshold, removal order must not matter.
  SubscriptionIndex index;
  for (SubscriberId s = 0; s < 100; ++s) index.Subscribe(s, "broadcast/#", {.qos = 1});
  for (SubscriberId s = 0; s < 100; s += 3)
    EXPECT_TRUE(index.Unsubscribe(s, "broadcast/#").existed);
  std::vector<SubscriberId> seen;
  index.Match("broadcast/x",
              [&](SubscriberId s, const SubscriptionOptions&) { seen.push_back(s); });
  std::vector<SubscriberId> want;
  for (SubscriberId s = 0; s < 100; ++s) {
    if (s % 3 != 0) want.push_back(s);
  }
  EXPECT_THAT(seen, ::testing::UnorderedElementsAreArray(want));
  for (SubscriberId s : want) {
    EXPECT_TRUE(index.Subscribe(s, "broadcast/#", {.qos = 2}).replaced_existing);
  }
  for (SubscriberId s : want) EXPECT_TRUE(index.Unsubscribe(s, "broadcast/#").existed);
  EXPECT_EQ(index.node_count(), 0u);
}

TEST(SubscriptionIndexTest, SharedSubscriptionsAreNotPlainMatches) {
  SubscriptionIndex index;
  SubscribeResult r = index.Subscribe(1, "$share/g/a/+", {.qos = 1});
  EXPECT_TRUE(r.filter_became_active);
  EXPECT_FALSE(index.Subscribe(2, "$share/g/a/+", {.qos = 1}).filter_became_active);
  // A different group on the same filter is its own (group, filter) pair.
  EXPECT_TRUE(index.Subscribe(3, "$share/h/a/+", {}).filter_became_active);
  EXPECT_THAT(Deliveries(index, "a/b"), IsEmpty());
  EXPECT_EQ(index.filter_count(), 2u);
  EXPECT_EQ(index.subscription_count(), 3u);
  ASSERT_NE(index.FindSubscription(1, "$share/g/a/+"), nullptr);
  EXPECT_EQ(index.FindSubscription(1, "$share/h/a/+"), nullptr);
  EXPECT_EQ(index.FindSubscription(1, "a/+"), nullptr);
}

TEST(SubscriptionIndexTest, MatchSharedRoundRobinsWithinEachGroup) {
  SubscriptionIndex index;
  for (SubscriberId s : {10, 11, 12}) index.Subscribe(s, "$share/workers/jobs/+", {.qos = 1});
  index.Subscribe(20, "$share/audit/jobs/#", {});
  std::map<std::string, std::vector<SubscriberId>> picks;
  for (int round = 0; round < 6; ++round) {
    index.MatchShared("jobs/build",
                      [&](std::string_view group, std::string_view filter, SharedGroup& g) {
                        EXPECT_EQ(group, g.name());
                        if (group == "workers") {
                          EXPECT_EQ(filter, "jobs/+");
                          EXPECT_EQ(g.members().size(), 3u);
                        } else {
                          EXPECT_EQ(filter, "jobs/#");
                        }
                        picks[std::string(group)].push_back(g.PickRoundRobin().subscriber);
                      });
  }
  EXPECT_THAT(picks["audit"], ElementsAre(20, 20, 20, 20, 20, 20));
  // Each member once per cycle, in a fixed order.
  std::vector<SubscriberId>& w = picks["workers"];
  ASSERT_EQ(w.size(), 6u);
  EXPECT_THAT(std::vector<SubscriberId>(w.begin(), w.begin() + 3),
              UnorderedElementsAre(10, 11, 12));
  EXPECT_EQ(std::vector<SubscriberId>(w.begin(), w.begin() + 3),
            std::vector<SubscriberId>(w.begin() + 3, w.end()));
}

TEST(SubscriptionIndexTest, SharedGroupsLeaveCleanly) {
  SubscriptionIndex index;
  index.Subscribe(1, "$share/g/a", {});
  index.Subscribe(2, "$share/g/a", {});
  index.Subscribe(3, "$share/h/a", {});
  SharedGroup* g = index.FindSharedGroup("g", "a");
  ASSERT_NE(g, nullptr);
  g->PickRoundRobin();
  g->PickRoundRobin();
  // A member leaving mid-cycle must not make the cursor run off the end.
  EXPECT_FALSE(index.Unsubscribe(1, "$share/g/a").filter_became_inactive);
  g = index.FindSharedGroup("g", "a");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->PickRoundRobin().subscriber, 2u);
  EXPECT_EQ(g->PickRoundRobin().subscriber, 2u);
  EXPECT_FALSE(index.Unsubscribe(2, "$share/h/a").existed);
  EXPECT_TRUE(index.Unsubscribe(2, "$share/g/a").filter_became_inactive);
  EXPECT_EQ(index.FindSharedGroup("g", "a"), nullptr);
  ASSERT_NE(index.FindSharedGroup("h", "a"), nullptr);
  EXPECT_TRUE(index.Unsubscribe(3, "$share/h/a").filter_became_inactive);
  EXPECT_EQ(index.node_count(), 0u);
  EXPECT_EQ(index.filter_count(), 0u);
}

TEST(SubscriptionIndexTest, ForEachListsSubscriptionsAsSubscribed) {
  SubscriptionIndex index;
  index.Subscribe(1, "a/+", {.qos = 1});
  index.Subscribe(2, "$share/g/b/#", {.qos = 2});
  std::vector<std::pair<std::string, SubscriberId>> seen;
  index.ForEach([&](std::string_view filter, SubscriberId s, const SubscriptionOptions&) {
    seen.emplace_back(std::string(filter), s);
  });
  EXPECT_THAT(seen, UnorderedElementsAre(Pair("a/+", 1), Pair("$share/g/b/#", 2)));
}

}  // namespace
}  // namespace shardmq::topic
