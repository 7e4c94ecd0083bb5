// RetainedIndex<Message>: the retained messages a shard knows, keyed by topic
// NAME, with a walker that returns every retained topic a subscription filter
// matches (answering a SUBSCRIBE from local memory, see DESIGN.md).
//
//   RetainedIndex<MessagePtr> retained;
//   retained.Set("sensors/1/temp", msg);
//   retained.MatchFilter("sensors/+/temp", [](std::string_view topic, MessagePtr& m) {...});
//
// Topic names and filters are assumed valid. A filter whose first level is '+'
// or '#' does not return topics starting with '$' [MQTT-4.7.2-1].
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

// Message is whatever the broker retains (a reference-counted pointer to an
// immutable message); it must be movable.
//
// Lifecycle: one per shard; nodes are created by Set and freed by Erase as
// soon as they hold nothing, so memory follows the retained set.
// Concurrency: owned by one shard thread; no locking. Pointers returned by
// Find stay valid until that topic is erased or replaced.
template <class Message>
class RetainedIndex {
 public:
  RetainedIndex() = default;
  RetainedIndex(const RetainedIndex&) = delete;
  RetainedIndex& operator=(const RetainedIndex&) = delete;

  // Stores `message` for `topic_name`, replacing any earlier one. Returns true
  // when it replaced one.
  bool Set(std::string_view topic_name, Message message) {
    Node* node = &root_;
    for (std::string_view level : TopicLevels(topic_name)) {
      bool created = false;
      node = &node->children.FindOrInsert(level, &created);
      node_count_ += created;
    }
    bool replaced = node->message.has_value();
    node->message = std::move(message);
    size_ += !replaced;
    return replaced;
  }

  // Returns the message retained for exactly `topic_name`, or nullptr.
  Message* Find(std::string_view topic_name) {
    Node* node = &root_;
    for (std::string_view level : TopicLevels(topic_name)) {
      node = node->children.Find(level);
      if (node == nullptr) return nullptr;
    }
    return node->message.has_value() ? &*node->message : nullptr;
  }

  // Drops the message retained for `topic_name` and frees the nodes left
  // holding nothing. Returns false if there was none.
  bool Erase(std::string_view topic_name) {
    absl::InlinedVector<std::pair<Node*, std::string_view>, 16> path;
    Node* node = &root_;
    for (std::string_view level : TopicLevels(topic_name)) {
      path.emplace_back(node, level);
      node = node->children.Find(level);
      if (node == nullptr) return false;
    }
    if (!node->message.has_value()) return false;
    node->message.reset();
    --size_;
    for (size_t i = path.size(); i-- > 0;) {
      auto [parent, level] = path[i];
      Node* child = parent->children.Find(level);
      if (child->message.has_value() || !child->children.empty()) break;
      parent->children.Erase(level);
      --node_count_;
    }
    return true;
  }

  // Calls on_match(std::string_view topic_name, Message&) for every retained
  // topic that `filter` matches, in no particular order. The topic view is
  // valid only during the call. `on_match` must not Set or Erase.
  template <class F>
  void MatchFilter(std::string_view filter, F&& on_match) {
    std::string topic;
    topic.reserve(filter.size() + 32);
    Walk(root_, filter, /*more=*/true, /*is_root=*/true, topic, on_match);
  }

  // Calls f(std::string_view topic_name, Message&) for every retained topic.
  template <class F>
  void ForEach(F&& f) {
    std::string topic;
    EmitSubtree(root_, /*is_root=*/true, /*skip_dollar=*/false, topic, f);
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Number of tree nodes below the root; zero whenever size() is zero.
  size_t node_count() const { return node_count_; }

 private:
  struct Node {
    std::string level;
    internal::LevelChildren<Node> children;
    std::optional<Message> message;
  };

  static void Append(std::string& topic, bool is_root, std::string_view level) {
    if (!is_root) topic.push_back('/');
    topic.append(level.data(), level.size());
  }

  static bool StartsWithDollar(std::string_view level) { return !level.empty() && level[0] == '$'; }

  // `node` has matched the filter up to `rest`; `more` says whether any filter
  // levels are left. `topic` is the name of `node`.
  template <class F>
  static void Walk(Node& node, std::string_view rest, bool more, bool is_root, std::string& topic,
                   F& on_match) {
    if (!more) {
      if (node.message.has_value()) on_match(std::string_view(topic), *node.message);
      return;
    }
    std::string_view level = NextLevel(rest, more);
    const size_t base = topic.size();
    if (level == "#") {
      // '#' matches the parent level itself ("a/#" returns "a") and all below.
      if (!is_root && node.message.has_value()) {
        on_match(std::string_view(topic), *node.message);
      }
      node.children.ForEach([&](Node& child) {
        if (is_root && StartsWithDollar(child.level)) return;
        Append(topic, is_root, child.level);
        EmitSubtree(child, /*is_root=*/false, /*skip_dollar=*/false, topic, on_match);
        topic.resize(base);
      });
    } else if (level == "+") {
      node.children.ForEach([&](Node& child) {
        if (is_root && StartsWithDollar(child.level)) return;
        Append(topic, is_root, child.level);
        Walk(child, rest, more, /*is_root=*/false, topic, on_match);
        topic.resize(base);
      });
    } else if (Node* child = node.children.Find(level)) {
      Append(topic, is_root, level);
      Walk(*child, rest, more, /*is_root=*/false, topic, on_match);
      topic.resize(base);
    }
  }

  template <class F>
  static void EmitSubtree(Node& node, bool is_root, bool skip_dollar, std::string& topic,
                          F& on_match) {
    if (node.message.has_value()) on_match(std::string_view(topic), *node.message);
    const size_t base = topic.size();
    node.children.ForEach([&](Node& child) {
      if (skip_dollar && StartsWithDollar(child.level)) return;
      Append(topic, is_root, child.level);
      EmitSubtree(child, /*is_root=*/false, /*skip_dollar=*/false, topic, on_match);
      topic.resize(base);
    });
  }

  Node root_;
  size_t size_ = 0;
  size_t node_count_ = 0;
};

}  // namespace shardmq::topic
