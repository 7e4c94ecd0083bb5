// Which shard owns a client id, and ids the broker assigns.
//
// Every connection of a client id ends up on the id's home shard (DESIGN.md,
// step 2), so a session, its takeover and its will never need a lock. The hash
// is fixed (FNV-1a, not a per-process seeded hash) so that a client's home
// shard is the same across restarts with the same shard count; durable state
// relies on that.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace shardmq::broker {

// The shard in [0, shard_count) that owns `client_id`. Inline and free of
// dependencies so that tools steering clients to a shard (shardmq-bench's
// --pub-shard/--sub-shard) use this very function, not a copy.
inline int HomeShard(std::string_view client_id, int shard_count) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : client_id) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  // Fold the high bits in: FNV-1a's low bits alone spread short ids poorly.
  hash ^= hash >> 29;
  return static_cast<int>(hash % static_cast<uint64_t>(shard_count));
}

// A new client id that is unique in this process and whose home shard is
// `shard`, so a client that asked the broker for an id needs no hand-off.
// 3.1.1 limits ids the server must accept to 23 characters [MQTT-3.1.3-5];
// the result is shorter than that unless `prefix` is long (a cluster puts
// its node id in it, so that ids stay unique across the nodes).
std::string GenerateClientId(int shard, int shard_count, uint64_t* counter,
                             std::string_view prefix = "smq-");

}  // namespace shardmq::broker
