#include "broker/client_id.h"

#include "absl/strings/str_format.h"

namespace shardmq::broker {

std::string GenerateClientId(int shard, int shard_count, uint64_t* counter,
                             std::string_view prefix) {
  // A few tries on average (shard_count of them); every try is unique because
  // the counter only grows.
  while (true) {
    std::string id = absl::StrFormat("%s%d-%x", prefix, shard, (*counter)++);
    if (HomeShard(id, shard_count) == shard) return id;
  }
}

}  // namespace shardmq::broker
