// A hash set that costs one pointer while empty.
//
// Every session has a few sets that nearly all sessions leave empty nearly
// all the time (the QoS 2 packet ids received and not yet released, the
// publishers its queue holds back); an empty absl::flat_hash_set takes 40
// bytes inline, which two of them add to every idle connection's Session.
// This one allocates its set on the first insert and gives it back on
// clear(). It offers the part of flat_hash_set's interface sessions use.
//
// Thread: owned by a Session, used only on its shard.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_set.h"

namespace shardmq::broker {

template <typename T>
class LazyHashSet {
 public:
  using Set = absl::flat_hash_set<T>;
  using iterator = typename Set::iterator;
  using const_iterator = typename Set::const_iterator;

  bool empty() const { return set_ == nullptr || set_->empty(); }
  size_t size() const { return set_ == nullptr ? 0 : set_->size(); }
  template <typename K>
  bool contains(const K& key) const {
    return set_ != nullptr && set_->contains(key);
  }

  template <typename... Args>
  std::pair<iterator, bool> emplace(Args&&... args) {
    return Get().emplace(std::forward<Args>(args)...);
  }
  std::pair<iterator, bool> insert(const T& value) { return Get().insert(value); }
  template <typename It>
  void insert(It first, It last) {
    if (first != last) Get().insert(first, last);
  }
  template <typename K>
  size_t erase(const K& key) {
    return set_ == nullptr ? 0 : set_->erase(key);
  }
  // Empties the set and gives its memory back.
  void clear() { set_.reset(); }

  const_iterator begin() const { return set_ != nullptr ? set_->cbegin() : Empty().cbegin(); }
  const_iterator end() const { return set_ != nullptr ? set_->cend() : Empty().cend(); }

 private:
  Set& Get() {
    if (set_ == nullptr) set_ = std::make_unique<Set>();
    return *set_;
  }
  // What an unallocated set iterates over (never written).
  static const Set& Empty() {
    static const Set empty;
    return empty;
  }

  std::unique_ptr<Set> set_;
};

}  // namespace shardmq::broker
