#include "topic/subscription_index.h"

#include "topic/levels.h"

namespace shardmq::topic {

SubscribeResult SubscriptionIndex::Subscribe(SubscriberId subscriber, std::string_view filter,
                                             const SubscriptionOptions& options) {
  SubscribeResult result;
  auto shared = ParseSharedSubscription(filter);
  SubscriberList* list = nullptr;
  if (!shared.has_value()) {
    list = &plain_.FindOrInsert(filter);
  } else {
    SharedFilter& entry = shared_.FindOrInsert(shared->filter);
    if (entry.groups.empty()) entry.filter.assign(shared->filter.data(), shared->filter.size());
    for (SharedGroup& group : entry.groups) {
      if (group.name_ == shared->group) list = &group.members_;
    }
    if (list == nullptr) {
      SharedGroup& group = entry.groups.emplace_back();
      group.name_.assign(shared->group.data(), shared->group.size());
      ++shared_groups_;
      list = &group.members_;
    }
  }
  result.filter_became_active = list->empty();
  result.replaced_existing = list->Upsert(subscriber, options);
  subscriptions_ += !result.replaced_existing;
  return result;
}

UnsubscribeResult SubscriptionIndex::Unsubscribe(SubscriberId subscriber, std::string_view filter) {
  UnsubscribeResult result;
  auto shared = ParseSharedSubscription(filter);
  if (!shared.has_value()) {
    SubscriberList* list = plain_.Find(filter);
    if (list == nullptr || !list->Remove(subscriber)) return result;
    result.existed = true;
    --subscriptions_;
    if (list->empty()) {
      plain_.Erase(filter);
      result.filter_became_inactive = true;
    }
    return result;
  }
  SharedFilter* entry = shared_.Find(shared->filter);
  if (entry == nullptr) return result;
  for (size_t i = 0; i < entry->groups.size(); ++i) {
    SharedGroup& group = entry->groups[i];
    if (group.name_ != shared->group) continue;
    if (!group.members_.Remove(subscriber)) return result;
    result.existed = true;
    --subscriptions_;
    if (group.members_.empty()) {
      entry->groups.erase(entry->groups.begin() + i);
      --shared_groups_;
      result.filter_became_inactive = true;
      if (entry->groups.empty()) shared_.Erase(shared->filter);
    }
    return result;
  }
  return result;
}

SharedGroup* SubscriptionIndex::FindSharedGroup(std::string_view group, std::string_view filter) {
  SharedFilter* entry = shared_.Find(filter);
  if (entry == nullptr) return nullptr;
  for (SharedGroup& g : entry->groups) {
    if (g.name_ == group) return &g;
  }
  return nullptr;
}

const SubscriptionOptions* SubscriptionIndex::FindSubscription(SubscriberId subscriber,
                                                               std::string_view filter) const {
  auto shared = ParseSharedSubscription(filter);
  const SubscriberList* list = nullptr;
  if (!shared.has_value()) {
    list = plain_.Find(filter);
  } else if (SharedGroup* group = const_cast<SubscriptionIndex*>(this)->FindSharedGroup(
                 shared->group, shared->filter)) {
    list = &group->members_;
  }
  if (list == nullptr) return nullptr;
  const Subscription* s = list->Find(subscriber);
  return s == nullptr ? nullptr : &s->options;
}

}  // namespace shardmq::topic
