#include "broker/client_id.h"

#include "absl/strings/str_format.h"

namespace shardmq::broker {

int HomeShard(std::string_view client_id, int shard_count) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : client_id) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  // Fold the high bits in: FNV-1a's low bits alone spread short ids poorly.
  hash ^= hash >> 29;
  return static_cast<int>(hash % static_cast<uint64_t>(shard_count));
}

std::string GenerateClientId(int shard, int shard_count, uint64_t* counter) {
  // A few tries on average (shard_count of them); every try is unique because
  // the counter only grows.
  while (true) {
    std::string id = absl::StrFormat("smq-%d-%x", shard, (*counter)++);
    if (HomeShard(id, shard_count) == shard) return id;
  }
}

}  // namespace shardmq::broker
