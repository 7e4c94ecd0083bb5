// AddressLimiter: connections per source address, open at once and accepted
// per second, over all shards of a group. One attacking host must not be able
// to take every connection slot or keep the shards busy accepting.
//
// Each shard asks Admit() when it accepts a socket and calls Release() when
// the socket finally closes (on whichever shard it then lives). The state is
// split over stripes, each behind its own mutex: this runs once per accepted
// and once per closed connection, never per message, and holds a lock only
// for one hash lookup, so shards accepting at once rarely meet.
//
// Addresses are compared whole (an IPv4-mapped IPv6 address counts as the
// IPv4 one). Memory: one entry per address with an open connection, plus
// addresses whose connect-rate budget is still refilling; idle entries are
// swept, so a scan from many addresses does not accumulate.
//
// The limits may change while shards accept (SetOptions, any thread): they
// are atomics read at each Admit. An address's connect budget restarts at
// its next Admit under a new rate. Turning the limiter on counts only
// connections accepted from then on (those accepted while it was off carry
// no key), so an address may briefly hold more than a new per-address bound.
#pragma once

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/numeric/int128.h"
#include "base/rate_limit.h"

namespace shardmq::shard {

class AddressLimiter {
 public:
  struct Options {
    // Connections one address may have open at once; 0: no limit.
    uint32_t max_per_address = 0;
    // New connections one address may open per second (and at once, after a
    // quiet second); 0: no limit.
    uint32_t connects_per_second = 0;
  };
  enum class Verdict : uint8_t { kAdmit, kTooMany, kTooFast };
  // An address as the limiter keys it; kNoKey for sockets it does not track
  // (limits off, or no peer address such as a Unix socket).
  using Key = absl::uint128;
  static constexpr Key kNoKey = 0;

  explicit AddressLimiter(const Options& options);

  bool enabled() const {
    return max_per_address_.load(std::memory_order_relaxed) != 0 ||
           connects_per_second_.load(std::memory_order_relaxed) != 0;
  }

  // Changes both limits for the connections accepted from now on (any
  // thread). Connections already open stay open.
  void SetOptions(const Options& options);
  Options options() const {
    return {max_per_address_.load(std::memory_order_relaxed),
            connects_per_second_.load(std::memory_order_relaxed)};
  }

  // The key for a peer address; kNoKey if the limiter is off or the address
  // is not IPv4/IPv6.
  Key KeyOf(const sockaddr_storage& addr, socklen_t len) const;

  // Counts a new connection from `key` (not kNoKey) at `now_ns` (monotonic),
  // or says which limit refuses it; a refused connection is not counted.
  Verdict Admit(Key key, int64_t now_ns);
  // The connection admitted with `key` closed. kNoKey is ignored.
  void Release(Key key, int64_t now_ns);

  // Addresses with state (for tests and metrics).
  size_t tracked_addresses() const;

 private:
  struct Entry {
    uint32_t open = 0;
    base::RateLimit connects;
    uint32_t rate = 0;  // the connects_per_second `connects` was made for
  };
  struct alignas(64) Stripe {
    // std::mutex rather than absl::Mutex: ThreadSanitizer understands the
    // pthread mutex under it, and not Debian's uninstrumented abseil.
    mutable std::mutex mu;
    absl::flat_hash_map<Key, Entry> entries;
    // Size at which the next Admit sweeps idle entries.
    size_t sweep_at = 1024;
  };
  static constexpr size_t kStripes = 64;

  Stripe& StripeOf(Key key);
  // Whether an entry holds nothing worth keeping.
  bool Idle(const Entry& entry, int64_t now_ns) const;
  void Sweep(Stripe& stripe, int64_t now_ns);

  // Relaxed: each is one independent bound, read once per Admit; a shard
  // that reads the old value for one more accept is harmless.
  std::atomic<uint32_t> max_per_address_;
  std::atomic<uint32_t> connects_per_second_;
  std::unique_ptr<std::array<Stripe, kStripes>> stripes_;
};

}  // namespace shardmq::shard
