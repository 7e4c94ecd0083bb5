// TopicTrie<Value>: a tree of MQTT topic filters, split on '/', with one
// optional Value per stored filter, and a matcher that finds every stored
// filter a topic name matches.
//
//   TopicTrie<int> trie;
//   trie.FindOrInsert("sport/+/player1") = 1;
//   trie.FindOrInsert("sport/#") = 2;
//   trie.Match("sport/tennis/player1", [](int& v) { ... });  // sees 1 and 2
//
// Matching follows MQTT 5 section 4.7: '+' matches exactly one level (which
// may be empty), '#' matches its parent level and any number of levels below,
// empty levels are real levels, and a topic name whose first level starts with
// '$' is not matched by a filter whose first level is '+' or '#'.
//
// Filters are assumed valid (the broker checks them first). Match neither
// allocates nor copies; its recursion depth is at most the depth of the
// deepest stored filter, so the broker should cap the number of levels it
// accepts in a filter.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "topic/internal/level_children.h"
#include "topic/levels.h"

namespace shardmq::topic {

// Lifecycle: one instance per user (a shard's SubscriptionIndex or
// InterestMap); nodes are created by FindOrInsert and freed by Erase as soon
// as they hold nothing, so memory follows the live set of filters.
// Concurrency: owned by one shard thread; no locking. References returned by
// FindOrInsert/Find stay valid until that filter is erased or the trie dies.
template <class Value>
class TopicTrie {
 public:
  TopicTrie() = default;
  TopicTrie(const TopicTrie&) = delete;
  TopicTrie& operator=(const TopicTrie&) = delete;
  TopicTrie(TopicTrie&&) = default;
  TopicTrie& operator=(TopicTrie&&) = default;

  // Returns the value stored for `filter`, default-constructing it first if
  // the filter was not stored.
  Value& FindOrInsert(std::string_view filter) {
    Node* node = &root_;
    for (std::string_view level : TopicLevels(filter)) {
      node = &Child(*node, level);
    }
    if (!node->value.has_value()) {
      node->value.emplace();
      ++size_;
    }
    return *node->value;
  }

  // Returns the value stored for exactly `filter` (no wildcard matching), or
  // nullptr.
  Value* Find(std::string_view filter) {
    Node* node = &root_;
    for (std::string_view level : TopicLevels(filter)) {
      node = FindChild(*node, level);
      if (node == nullptr) return nullptr;
    }
    return node->value.has_value() ? &*node->value : nullptr;
  }
  const Value* Find(std::string_view filter) const {
    return const_cast<TopicTrie*>(this)->Find(filter);
  }

  // Removes the value for `filter` and frees every node left holding nothing.
  // Returns false if `filter` was not stored.
  bool Erase(std::string_view filter) {
    // The path from the root, so empty nodes can be unlinked bottom-up
    // without parent pointers in every node.
    absl::InlinedVector<std::pair<Node*, std::string_view>, 16> path;
    Node* node = &root_;
    for (std::string_view level : TopicLevels(filter)) {
      path.emplace_back(node, level);
      node = FindChild(*node, level);
      if (node == nullptr) return false;
    }
    if (!node->value.has_value()) return false;
    node->value.reset();
    --size_;
    for (size_t i = path.size(); i-- > 0;) {
      auto [parent, level] = path[i];
      Node* child = FindChild(*parent, level);
      if (!child->empty()) break;
      UnlinkChild(*parent, level);
      --node_count_;
    }
    return true;
  }

  // Calls on_value(Value&) once for every stored filter that matches
  // `topic_name`, in no particular order. `on_value` must not insert or erase.
  template <class F>
  void Match(std::string_view topic_name, F&& on_value) {
    MatchRoot<Node>(root_, topic_name, on_value);
  }
  template <class F>
  void Match(std::string_view topic_name, F&& on_value) const {
    MatchRoot<const Node>(root_, topic_name, on_value);
  }

  // Calls f(std::string_view filter, Value&) for every stored filter, in no
  // particular order. For admin and debugging: it builds each filter string.
  template <class F>
  void ForEach(F&& f) {
    std::string path;
    ForEachIn<Node>(root_, path, /*is_root=*/true, f);
  }
  template <class F>
  void ForEach(F&& f) const {
    std::string path;
    ForEachIn<const Node>(root_, path, /*is_root=*/true, f);
  }

  // Number of stored filters.
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Number of tree nodes below the root; zero whenever size() is zero.
  size_t node_count() const { return node_count_; }

 private:
  struct Node {
    std::string level;  // Empty for '+', '#' and the root; they sit in own slots.
    internal::LevelChildren<Node> children;
    std::unique_ptr<Node> plus;
    std::unique_ptr<Node> hash;
    std::optional<Value> value;

    bool empty() const {
      return !value.has_value() && plus == nullptr && hash == nullptr && children.empty();
    }
  };

  Node& Child(Node& node, std::string_view level) {
    if (level == "+" || level == "#") {
      std::unique_ptr<Node>& slot = level == "+" ? node.plus : node.hash;
      if (slot == nullptr) {
        slot = std::make_unique<Node>();
        ++node_count_;
      }
      return *slot;
    }
    bool created = false;
    Node& child = node.children.FindOrInsert(level, &created);
    node_count_ += created;
    return child;
  }

  static Node* FindChild(const Node& node, std::string_view level) {
    if (level == "+") return node.plus.get();
    if (level == "#") return node.hash.get();
    return node.children.Find(level);
  }

  static void UnlinkChild(Node& node, std::string_view level) {
    if (level == "+") {
      node.plus.reset();
    } else if (level == "#") {
      node.hash.reset();
    } else {
      node.children.Erase(level);
    }
  }

  template <class N, class F>
  static void MatchRoot(N& root, std::string_view topic_name, F& on_value) {
    // [MQTT-4.7.2-1]: wildcards in the first level never match "$..." topics.
    bool dollar = !topic_name.empty() && topic_name[0] == '$';
    if (!dollar && root.hash != nullptr && root.hash->value.has_value()) {
      on_value(*root.hash->value);
    }
    std::string_view rest = topic_name;
    bool more = true;
    std::string_view level = NextLevel(rest, more);
    if (N* child = root.children.Find(level)) MatchBelow(*child, rest, more, on_value);
    if (!dollar && root.plus != nullptr) MatchBelow(*root.plus, rest, more, on_value);
  }

  // `node` has matched the topic's levels up to `rest`; `more` says whether
  // any levels are left.
  template <class N, class F>
  static void MatchBelow(N& node, std::string_view rest, bool more, F& on_value) {
    // '#' matches the parent level too, so it fires whether or not levels remain.
    if (node.hash != nullptr && node.hash->value.has_value()) on_value(*node.hash->value);
    if (!more) {
      if (node.value.has_value()) on_value(*node.value);
      return;
    }
    std::string_view level = NextLevel(rest, more);
    if (N* child = node.children.Find(level)) MatchBelow(*child, rest, more, on_value);
    if (node.plus != nullptr) MatchBelow(*node.plus, rest, more, on_value);
  }

  template <class N, class F>
  static void ForEachIn(N& node, std::string& path, bool is_root, F& f) {
    const size_t base = path.size();
    if (node.value.has_value()) f(std::string_view(path), *node.value);
    auto visit = [&](N& child, std::string_view level) {
      // Not "path.empty()": the filter "/a" has an empty first level.
      if (!is_root) path.push_back('/');
      path.append(level.data(), level.size());
      ForEachIn<N>(child, path, /*is_root=*/false, f);
      path.resize(base);
    };
    node.children.ForEach([&](N& child) { visit(child, child.level); });
    if (node.plus != nullptr) visit(*node.plus, "+");
    if (node.hash != nullptr) visit(*node.hash, "#");
  }

  Node root_;
  size_t size_ = 0;
  size_t node_count_ = 0;
};

}  // namespace shardmq::topic
