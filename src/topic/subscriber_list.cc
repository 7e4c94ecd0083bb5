#include "topic/subscriber_list.h"

namespace shardmq::topic {

size_t SubscriberList::IndexOf(SubscriberId subscriber) const {
  if (positions_ != nullptr) {
    auto it = positions_->find(subscriber);
    return it == positions_->end() ? items_.size() : it->second;
  }
  for (size_t i = 0; i < items_.size(); ++i) {
    if (items_[i].subscriber == subscriber) return i;
  }
  return items_.size();
}

bool SubscriberList::Upsert(SubscriberId subscriber, const SubscriptionOptions& options) {
  size_t i = IndexOf(subscriber);
  if (i < items_.size()) {
    items_[i].options = options;  // [MQTT-3.8.4-3]: a repeat SUBSCRIBE replaces.
    return true;
  }
  items_.push_back(Subscription{subscriber, options});
  if (positions_ != nullptr) {
    positions_->emplace(subscriber, static_cast<uint32_t>(i));
  } else if (items_.size() > kIndexThreshold) {
    positions_ = std::make_unique<absl::flat_hash_map<SubscriberId, uint32_t>>();
    positions_->reserve(items_.size());
    for (size_t j = 0; j < items_.size(); ++j) {
      positions_->emplace(items_[j].subscriber, static_cast<uint32_t>(j));
    }
  }
  return false;
}

bool SubscriberList::Remove(SubscriberId subscriber) {
  size_t i = IndexOf(subscriber);
  if (i == items_.size()) return false;
  if (i + 1 != items_.size()) {
    items_[i] = items_.back();
    if (positions_ != nullptr) (*positions_)[items_[i].subscriber] = static_cast<uint32_t>(i);
  }
  items_.pop_back();
  if (positions_ != nullptr) {
    positions_->erase(subscriber);
    // Drop the map well below the threshold so a list that shrank stops
    // paying for it, without flapping at the boundary.
    if (items_.size() < kIndexThreshold / 2) positions_.reset();
  }
  if (items_.empty()) items_.shrink_to_fit();
  return true;
}

const Subscription* SubscriberList::Find(SubscriberId subscriber) const {
  size_t i = IndexOf(subscriber);
  return i < items_.size() ? &items_[i] : nullptr;
}

}  // namespace shardmq::topic
