#include "topic/interest_map.h"

#include "topic/levels.h"

namespace shardmq::topic {

bool InterestMap::Add(std::string_view filter, uint32_t shard) {
  auto shared = ParseSharedSubscription(filter);
  if (!shared.has_value()) return plain_.FindOrInsert(filter).Add(shard);
  SharedFilter& entry = shared_.FindOrInsert(shared->filter);
  if (entry.groups.empty()) entry.filter.assign(shared->filter.data(), shared->filter.size());
  for (Group& group : entry.groups) {
    if (group.name == shared->group) return group.shards.Add(shard);
  }
  Group& group = entry.groups.emplace_back();
  group.name.assign(shared->group.data(), shared->group.size());
  ++shared_pairs_;
  return group.shards.Add(shard);
}

bool InterestMap::Remove(std::string_view filter, uint32_t shard) {
  auto shared = ParseSharedSubscription(filter);
  if (!shared.has_value()) {
    ShardSet* shards = plain_.Find(filter);
    if (shards == nullptr || !shards->Remove(shard)) return false;
    if (shards->empty()) plain_.Erase(filter);
    return true;
  }
  SharedFilter* entry = shared_.Find(shared->filter);
  if (entry == nullptr) return false;
  for (size_t i = 0; i < entry->groups.size(); ++i) {
    Group& group = entry->groups[i];
    if (group.name != shared->group) continue;
    if (!group.shards.Remove(shard)) return false;
    if (group.shards.empty()) {
      entry->groups.erase(entry->groups.begin() + i);
      --shared_pairs_;
      if (entry->groups.empty()) shared_.Erase(shared->filter);
    }
    return true;
  }
  return false;
}

const ShardSet* InterestMap::Find(std::string_view filter) const {
  auto shared = ParseSharedSubscription(filter);
  if (!shared.has_value()) return plain_.Find(filter);
  const SharedFilter* entry = shared_.Find(shared->filter);
  if (entry == nullptr) return nullptr;
  for (const Group& group : entry->groups) {
    if (group.name == shared->group) return &group.shards;
  }
  return nullptr;
}

}  // namespace shardmq::topic
