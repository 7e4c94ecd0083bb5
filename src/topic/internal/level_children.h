// The exact-level children of one tree node, shared by TopicTrie and
// RetainedIndex. Private to src/topic.
//
// Most nodes have one or a few children ("site/17" has just "device", a
// device has a handful of metrics), so children start in a small array
// (the first one stored inline, no allocation) searched linearly, and move to
// a hash map once there are more than kLinearMax of them. The map's keys are
// views into each child's own `level` string, which never moves because
// children are heap-allocated.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"

namespace shardmq::topic::internal {

// Hashes std::string_view through abseil, whose string_view is a distinct type
// in the Debian build.
struct LevelHash {
  size_t operator()(std::string_view s) const {
    return absl::Hash<absl::string_view>{}(absl::string_view(s.data(), s.size()));
  }
};

// `Node` must have a `std::string level` member and be default-constructible.
// Lifecycle: owned by its parent node; destroying it destroys the subtree.
// Concurrency: none; used by the one shard thread that owns the tree.
template <class Node>
class LevelChildren {
 public:
  // Above this many children, lookups go through a hash map. Linear search
  // over a handful of short strings beats hashing and costs no table memory.
  // Measured on 1M subscriptions (bench/topic): with 8, 237 bytes per
  // subscription and ~730 ns per Match; with 0 (always a map), 293 bytes and
  // ~1100 ns; 16 was no better than 8. Keeping the first child inline saved
  // another 12 bytes per subscription.
  static constexpr size_t kLinearMax = 8;

  Node* Find(std::string_view level) const {
    if (map_ != nullptr) {
      auto it = map_->find(level);
      return it == map_->end() ? nullptr : it->second.get();
    }
    for (const auto& child : list_) {
      if (child->level == level) return child.get();
    }
    return nullptr;
  }

  // Returns the child for `level`, creating an empty one if needed; sets
  // `*created` when it did.
  Node& FindOrInsert(std::string_view level, bool* created) {
    if (Node* found = Find(level)) {
      *created = false;
      return *found;
    }
    *created = true;
    auto node = std::make_unique<Node>();
    node->level.assign(level.data(), level.size());
    Node& ref = *node;
    if (map_ == nullptr && list_.size() < kLinearMax) {
      list_.push_back(std::move(node));
      return ref;
    }
    if (map_ == nullptr) {
      map_ = std::make_unique<Map>();
      map_->reserve(list_.size() + 1);
      for (auto& child : list_) {
        std::string_view key = child->level;
        map_->emplace(key, std::move(child));
      }
      list_.clear();
      list_.shrink_to_fit();
    }
    std::string_view key = ref.level;
    map_->emplace(key, std::move(node));
    return ref;
  }

  // Destroys the child for `level` (and its subtree). No-op if absent.
  void Erase(std::string_view level) {
    if (map_ != nullptr) {
      map_->erase(level);
      if (map_->empty()) map_.reset();
      return;
    }
    for (size_t i = 0; i < list_.size(); ++i) {
      if (list_[i]->level == level) {
        list_[i] = std::move(list_.back());
        list_.pop_back();
        return;
      }
    }
  }

  bool empty() const { return map_ == nullptr ? list_.empty() : map_->empty(); }
  size_t size() const { return map_ == nullptr ? list_.size() : map_->size(); }

  // Calls f(Node&) for every child, in no particular order. `f` must not add
  // or remove children of this node.
  template <class F>
  void ForEach(F&& f) const {
    if (map_ != nullptr) {
      for (const auto& [key, child] : *map_) f(*child);
    } else {
      for (const auto& child : list_) f(*child);
    }
  }

 private:
  using Map = absl::flat_hash_map<std::string_view, std::unique_ptr<Node>, LevelHash>;

  absl::InlinedVector<std::unique_ptr<Node>, 1> list_;
  std::unique_ptr<Map> map_;  // Non-null once there were more than kLinearMax children.
};

}  // namespace shardmq::topic::internal
