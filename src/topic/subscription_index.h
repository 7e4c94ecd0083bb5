// SubscriptionIndex: one shard's local subscriptions, found by topic name.
//
//   SubscriptionIndex index;
//   auto r = index.Subscribe(session_id, "sport/+/score", {.qos = 1});
//   if (r.filter_became_active) { /* tell other shards: InterestMap::Add */ }
//   index.Match("sport/tennis/score", [](SubscriberId s, const SubscriptionOptions& o) {...});
//   index.MatchShared("sport/tennis/score", [](std::string_view group,
//       std::string_view filter, SharedGroup& g) { Deliver(g.PickRoundRobin()); });
//
// Shared subscriptions ("$share/{group}/{filter}") are kept apart from the
// rest: Match never reports them, MatchShared reports each matching (group,
// filter) once with all of its local members so the broker delivers to one.
//
// A subscriber with overlapping filters ("a/+" and "a/#") is reported once
// per matching filter; the broker merges those (MQTT 5 section 3.3.4 lets it
// deliver one copy with the highest QoS and all subscription identifiers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"
#include "topic/subscriber_list.h"
#include "topic/topic_trie.h"

namespace shardmq::topic {

// The members of one shared subscription group on one filter, on this shard.
// Lifecycle: owned by the SubscriptionIndex; exists while it has a member; a
// reference is valid only until the index is next modified.
// Concurrency: owned by the index's shard thread; no locking. The round-robin
// cursor is per shard, so each shard spreads its own share of the group's
// messages evenly over its local members.
class SharedGroup {
 public:
  std::string_view name() const { return name_; }
  // Never empty while the group exists.
  absl::Span<const Subscription> members() const { return members_.entries(); }
  // The member after the one picked last time, cycling through members().
  const Subscription& PickRoundRobin() {
    auto all = members_.entries();
    if (cursor_ >= all.size()) cursor_ = 0;
    return all[cursor_++];
  }

 private:
  friend class SubscriptionIndex;

  std::string name_;
  SubscriberList members_;
  uint32_t cursor_ = 0;
};

struct SubscribeResult {
  // The subscriber already had this filter; its options were replaced
  // [MQTT-3.8.4-3]. The broker resends retained messages only if
  // retain_handling says so.
  bool replaced_existing = false;
  // This shard's count of subscribers on the filter went 0 -> 1: send
  // InterestMap::Add(filter, this_shard) to the other shards. For a shared
  // filter, "the filter" is the whole "$share/{group}/{filter}" string.
  bool filter_became_active = false;
};

struct UnsubscribeResult {
  bool existed = false;
  // The count went 1 -> 0: send InterestMap::Remove(filter, this_shard).
  bool filter_became_inactive = false;
};

// Lifecycle: one per shard, alive as long as the shard. Sessions call
// Subscribe/Unsubscribe; when a session ends the broker unsubscribes each of
// its filters (it keeps that list per session; the index has no per-subscriber
// lookup). Concurrency: owned by one shard thread; no locking. Callbacks must
// not modify the index.
class SubscriptionIndex {
 public:
  // Adds or replaces `subscriber`'s subscription to `filter`, which may be a
  // shared subscription filter. `filter` must be valid.
  SubscribeResult Subscribe(SubscriberId subscriber, std::string_view filter,
                            const SubscriptionOptions& options);

  // Removes `subscriber`'s subscription to `filter` (exact string, as given
  // to Subscribe).
  UnsubscribeResult Unsubscribe(SubscriberId subscriber, std::string_view filter);

  // Calls on_match(SubscriberId, const SubscriptionOptions&) for every
  // non-shared subscription whose filter matches `topic_name`.
  template <class F>
  void Match(std::string_view topic_name, F&& on_match) const {
    plain_.Match(topic_name, [&on_match](const SubscriberList& list) {
      for (const Subscription& s : list.entries()) on_match(s.subscriber, s.options);
    });
  }

  // Calls on_group(std::string_view group, std::string_view filter,
  // SharedGroup&) for every local shared group whose filter matches
  // `topic_name`. `filter` is the part after "$share/{group}/".
  template <class F>
  void MatchShared(std::string_view topic_name, F&& on_group) {
    shared_.Match(topic_name, [&on_group](SharedFilter& entry) {
      for (SharedGroup& group : entry.groups) {
        on_group(std::string_view(group.name_), std::string_view(entry.filter), group);
      }
    });
  }

  // The local group `group` on `filter` (the part after "$share/{group}/"),
  // or nullptr. For the shard chosen from InterestMap::MatchShared.
  SharedGroup* FindSharedGroup(std::string_view group, std::string_view filter);

  // The options `subscriber` has on `filter` (shared or not), or nullptr.
  const SubscriptionOptions* FindSubscription(SubscriberId subscriber,
                                              std::string_view filter) const;

  // Calls f(std::string_view filter, SubscriberId, const SubscriptionOptions&)
  // for every subscription, shared ones with their "$share/{group}/" prefix.
  // For admin and debugging: builds strings.
  template <class F>
  void ForEach(F&& f) const {
    plain_.ForEach([&f](std::string_view filter, const SubscriberList& list) {
      for (const Subscription& s : list.entries()) f(filter, s.subscriber, s.options);
    });
    std::string full;
    shared_.ForEach([&](std::string_view filter, const SharedFilter& entry) {
      for (const SharedGroup& group : entry.groups) {
        full.assign(kSharePrefix);
        full.append(group.name_).append("/").append(filter.data(), filter.size());
        for (const Subscription& s : group.members())
          f(std::string_view(full), s.subscriber, s.options);
      }
    });
  }

  // Number of subscriptions, shared ones included.
  size_t subscription_count() const { return subscriptions_; }
  // Number of distinct filters with a local subscriber, each (group, filter)
  // counting once: the number of filters this shard announced to the others.
  size_t filter_count() const { return plain_.size() + shared_groups_; }
  // Number of local shared groups, each (group, filter) counting once.
  size_t shared_group_count() const { return shared_groups_; }
  // Tree nodes in use; zero once everything is unsubscribed.
  size_t node_count() const { return plain_.node_count() + shared_.node_count(); }

 private:
  struct SharedFilter {
    std::string filter;  // Reported to MatchShared callers.
    absl::InlinedVector<SharedGroup, 1> groups;
  };

  TopicTrie<SubscriberList> plain_;
  TopicTrie<SharedFilter> shared_;  // Keyed by the filter after "$share/{group}/".
  size_t subscriptions_ = 0;
  size_t shared_groups_ = 0;
};

}  // namespace shardmq::topic
