// BrokerLink: how InlineClients reach the shards without outliving them.
// Broker::Impl owns the ShardGroup; inline clients hold this link, which
// Impl cuts (under the mutex) before the group goes away, after which Post
// fails instead of touching a destroyed group.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "shard/shard_group.h"
#include "shardmq/inline_client.h"

namespace shardmq::broker {

class BrokerLink {
 public:
  // Any thread. False (task destroyed unrun) when the broker is not running.
  bool Post(int shard, shard::ExternalMailbox::Task task) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (group_ == nullptr) return false;
    return group_->PostExternal(shard, std::move(task));
  }
  void Attach(shard::ShardGroup* group) {
    std::lock_guard<std::mutex> lock(mutex_);
    group_ = group;
  }

 private:
  std::mutex mutex_;
  shard::ShardGroup* group_ = nullptr;
};

// Opens an inline client's session on its home shard and waits for it.
absl::StatusOr<std::unique_ptr<InlineClient>> NewInlineClient(std::shared_ptr<BrokerLink> link,
                                                              std::string client_id,
                                                              int shard_count);

}  // namespace shardmq::broker
