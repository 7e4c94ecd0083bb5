// What a BrokerShard keeps for an InlineClient's session, and what an
// InlineClient sends it (shardmq/inline_client.h).
//
// Lifecycle and thread: an InlineSink is created by InlineClient, handed to
// the home shard in InlineOpen and touched only by that shard's thread
// afterwards; the session's SessionExtra holds it until the session ends.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "shardmq/inline_client.h"

namespace shardmq::broker {

struct InlineSink {
  // Filter as subscribed -> its callback.
  absl::flat_hash_map<std::string, InlineCallback> callbacks;
};

struct InlinePublishRequest {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  std::vector<std::pair<std::string, std::string>> user_properties;
};

// True on a shard thread (set when its BrokerShard is made): blocking
// InlineClient calls refuse to run there.
bool OnShardThread();
void MarkShardThread();

}  // namespace shardmq::broker
