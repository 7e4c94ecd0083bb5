// RedisLink for builds without hiredis (libhiredis-dev was not found when
// meson configured): clustering with Redis is refused at start-up with a
// message that says so, and nothing else changes.
#include "cluster/redis_link.h"

namespace shardmq::cluster {

class RedisLink::Impl {};

absl::StatusOr<std::unique_ptr<RedisLink>> RedisLink::Create(RedisLinkOptions, Events) {
  return absl::UnimplementedError(
      "--cluster-redis: this shardmq was built without hiredis, clustering with Redis is not "
      "available (install libhiredis-dev and reconfigure)");
}

RedisLink::RedisLink(RedisLinkOptions options, Events) : options_(std::move(options)) {}
RedisLink::~RedisLink() = default;
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> RedisLink::LoadRetained(
    std::chrono::milliseconds) {
  return absl::UnimplementedError("--cluster-redis: this shardmq was built without hiredis");
}
void RedisLink::Start() {}
void RedisLink::Stop() {}
void RedisLink::AbandonForTest() {}
void RedisLink::Claim(std::string_view, uint64_t) {}
void RedisLink::Drain(std::string_view, uint64_t) {}
void RedisLink::Released(std::string_view, std::string_view, uint64_t) {}
void RedisLink::SetField(std::string_view, std::string_view, std::string) {}
void RedisLink::DeleteField(std::string_view, std::string_view) {}
void RedisLink::ResetSession(std::string_view) {}
void RedisLink::Push(std::string_view, std::string, size_t) {}
void RedisLink::Forget(std::string_view) {}
void RedisLink::SetRetained(std::string_view, std::string) {}
void RedisLink::ClearRetained(std::string_view) {}
RedisLinkStats RedisLink::Stats() const { return {}; }

}  // namespace shardmq::cluster
