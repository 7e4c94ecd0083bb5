// InterestMap: which OTHER shards want a topic. Maps each filter to the set of
// shards that have at least one local subscriber on it; ShardsFor(topic) is
// the union over every filter the topic matches. See "How a PUBLISH travels"
// in DESIGN.md.
//
//   InterestMap interest;
//   interest.Add("a/+", 3);              // shard 3 reported 0->1 on "a/+"
//   interest.Add("$share/g/a/#", 5);     // shard 5 has members of group g on "a/#"
//   ShardSet shards = interest.ShardsFor("a/b");  // {3}; shared groups excluded
//   interest.MatchShared("a/b", [](std::string_view group, std::string_view filter,
//                                  const ShardSet& shards) { /* pick one shard */ });
//
// Shared subscriptions are kept apart: a message goes to every shard in
// ShardsFor but to only ONE shard per matching group, which the broker picks
// from MatchShared's set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/inlined_vector.h"
#include "topic/shard_set.h"
#include "topic/topic_trie.h"

namespace shardmq::topic {

// Lifecycle: one per shard, fed by the 0->1 / 1->0 control messages other
// shards send (SubscriptionIndex reports those transitions). Whether a shard
// puts its own number in is the broker's choice; its own subscribers are
// found through its SubscriptionIndex either way.
// Concurrency: owned by one shard thread; no locking.
class InterestMap {
 public:
  // Records that `shard` has local subscribers on `filter`. `filter` may be a
  // "$share/{group}/{filter}" filter. Idempotent; returns true if it changed
  // anything.
  bool Add(std::string_view filter, uint32_t shard);

  // Records that `shard` no longer has local subscribers on `filter`, and
  // forgets the filter once no shard has any. Returns true if it changed
  // anything.
  bool Remove(std::string_view filter, uint32_t shard);

  // Shards with a non-shared subscriber whose filter matches `topic_name`.
  ShardSet ShardsFor(std::string_view topic_name) const {
    ShardSet out;
    ShardsFor(topic_name, out);
    return out;
  }
  // Same, into `out` (cleared first) so a caller with > 64 shards can reuse
  // its allocation.
  void ShardsFor(std::string_view topic_name, ShardSet& out) const {
    out.Clear();
    plain_.Match(topic_name, [&out](const ShardSet& shards) { out |= shards; });
  }

  // Calls on_group(std::string_view group, std::string_view filter,
  // const ShardSet& shards) for every shared group whose filter matches
  // `topic_name`: `shards` are the shards with members of that group on that
  // filter. A group subscribed with two matching filters is reported twice,
  // once per filter, as MQTT treats them as two shared subscriptions.
  template <class F>
  void MatchShared(std::string_view topic_name, F&& on_group) const {
    shared_.Match(topic_name, [&](const SharedFilter& entry) {
      for (const Group& group : entry.groups) {
        on_group(std::string_view(group.name), std::string_view(entry.filter), group.shards);
      }
    });
  }

  // The shards for exactly `filter` (no wildcard matching; "$share/g/f"
  // allowed), or nullptr. For tests and admin.
  const ShardSet* Find(std::string_view filter) const;

  // Number of distinct filters, counting each (group, filter) pair as one.
  size_t size() const { return plain_.size() + shared_pairs_; }
  // Number of distinct shared (group, filter) pairs; 0 lets a router skip
  // MatchShared altogether.
  size_t shared_size() const { return shared_pairs_; }

  // Tree nodes in use; zero once everything is removed.
  size_t node_count() const { return plain_.node_count() + shared_.node_count(); }

 private:
  struct Group {
    std::string name;
    ShardSet shards;
  };
  struct SharedFilter {
    std::string filter;  // Reported to MatchShared callers.
    absl::InlinedVector<Group, 1> groups;
  };

  TopicTrie<ShardSet> plain_;
  TopicTrie<SharedFilter> shared_;  // Keyed by the filter after "$share/{group}/".
  size_t shared_pairs_ = 0;
};

}  // namespace shardmq::topic
