// Topic levels: allocation-free iteration over the '/'-separated levels of a
// topic name or filter, a plain one-pair matcher, and shared-subscription
// parsing.
//
// Every function here assumes its input was already validated by the broker
// (non-empty, valid UTF-8, wildcards only as whole levels, '#' last). Nothing
// here allocates.
//
//   for (std::string_view level : TopicLevels("a//b")) { ... }  // "a", "", "b"
//   FilterMatches("sport/+", "sport/")                           // true
//   ParseSharedSubscription("$share/g/a/#")                      // {"g", "a/#"}
#pragma once

#include <cstddef>
#include <iterator>
#include <optional>
#include <string_view>

namespace shardmq::topic {

// Iterates the levels of a topic name or filter. Empty levels are real levels:
// "a/" yields "a" and "", "/" yields "" and "", and "" yields one empty level.
// The views point into the string passed in; it must outlive the iteration.
class TopicLevels {
 public:
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = std::string_view;
    using difference_type = std::ptrdiff_t;
    using pointer = const std::string_view*;
    using reference = const std::string_view&;

    Iterator() = default;  // The end iterator.
    explicit Iterator(std::string_view text) : rest_(text), done_(false), at_end_(false) {
      Advance();
    }

    reference operator*() const { return level_; }
    pointer operator->() const { return &level_; }
    Iterator& operator++() {
      Advance();
      return *this;
    }
    void operator++(int) { Advance(); }
    // Only "at end or not" is compared: this is an input iterator.
    bool operator==(const Iterator& other) const { return at_end_ == other.at_end_; }

   private:
    void Advance() {
      if (done_) {
        at_end_ = true;
        return;
      }
      size_t slash = rest_.find('/');
      if (slash == std::string_view::npos) {
        level_ = rest_;
        done_ = true;
      } else {
        level_ = rest_.substr(0, slash);
        rest_.remove_prefix(slash + 1);
      }
    }

    std::string_view rest_;
    std::string_view level_;
    bool done_ = true;    // No levels left after level_.
    bool at_end_ = true;  // level_ is not valid.
  };

  explicit TopicLevels(std::string_view text) : text_(text) {}
  Iterator begin() const { return Iterator(text_); }
  Iterator end() const { return Iterator(); }

 private:
  std::string_view text_;
};

// Returns the first level of `rest` and removes it (and its '/') from `rest`.
// Sets `has_more` to whether another level follows; call only while it is
// true (start with true). The building block for recursive walkers.
//
//   std::string_view rest = topic; bool more = true;
//   while (more) { std::string_view level = NextLevel(rest, more); ... }
inline std::string_view NextLevel(std::string_view& rest, bool& has_more) {
  size_t slash = rest.find('/');
  std::string_view level;
  if (slash == std::string_view::npos) {
    level = rest;
    rest = {};
    has_more = false;
  } else {
    level = rest.substr(0, slash);
    rest.remove_prefix(slash + 1);
    has_more = true;
  }
  return level;
}

// True when `topic_name` matches `filter` under MQTT 5 section 4.7, including
// [MQTT-4.7.2-1]: a topic name starting with '$' is not matched by a filter
// starting with a wildcard. One pair at a time; for many filters use TopicTrie.
bool FilterMatches(std::string_view filter, std::string_view topic_name);

// True when `filter` contains a '+' or '#' level.
bool HasWildcard(std::string_view filter);

// "$share/"; a shared subscription filter is "$share/{ShareName}/{filter}".
inline constexpr std::string_view kSharePrefix = "$share/";

inline bool IsSharedSubscription(std::string_view filter) {
  return filter.substr(0, kSharePrefix.size()) == kSharePrefix;
}

// The two halves of "$share/{group}/{filter}"; views into the parsed string.
struct SharedSubscription {
  std::string_view group;
  std::string_view filter;
};

// Splits a shared subscription filter. Returns nullopt when `filter` is not
// "$share/" followed by a non-empty group, a '/', and a non-empty filter.
std::optional<SharedSubscription> ParseSharedSubscription(std::string_view filter);

}  // namespace shardmq::topic
