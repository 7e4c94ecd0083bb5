// ShardGroup: creates N shards (one thread + one io_uring ring each), their
// listening sockets and the N*(N-1) mailboxes between them; starts, stops and
// joins them.
//
// Example:
//   ShardGroup::Options opts;
//   opts.shard_count = 4;
//   opts.listeners = {{"127.0.0.1", 1883}};
//   auto group = ShardGroup::Create(opts, [](Shard& s) {
//     return std::make_unique<BrokerShard>(s);
//   });
//   if (!group.ok()) { ... group.status().message() says what to fix ... }
//   for (auto& a : (*group)->BoundAddresses()) printf("listening on %s\n", a.c_str());
//   SHARDMQ_CHECK((*group)->Start().ok());
//   ... (signal thread) (*group)->Stop();
//   (*group)->Join();
//
// Threading: Create/Start/Join/destructor from one controlling thread.
// Stop() and counters() from any thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shard/external_mailbox.h"
#include "shard/reactor.h"
#include "shard/tls_session.h"
#include "shard/ws_session.h"

namespace shardmq::shard {

// ShardGroup::Options::mailbox_capacity = 0: the slots of one ordered pair's
// mailbox for `shard_count` shards, the largest power of two that keeps a
// shard's inbound mailboxes within kInboundMailBudget slots (1.5 MiB), and
// never below kMinMailboxCapacity: 65536 for 2 shards, 32768 for 3, 4096 for
// 17, 2048 for 33, 1024 from 34 on.
inline constexpr uint32_t kInboundMailBudget = 65536;
inline constexpr uint32_t kMinMailboxCapacity = 1024;
uint32_t AutoMailboxCapacity(uint32_t shard_count);

class ShardGroup {
 public:
  struct ListenAddress {
    std::string host;   // numeric IPv4 or IPv6 address ("0.0.0.0", "::1", ...)
    uint16_t port = 0;  // 0: the kernel picks one; every shard shares it
    // Set: a TLS listener; every accepted connection gets a TlsSession and
    // the handler sees only plaintext.
    std::shared_ptr<const TlsContext> tls;
    // Set: a WebSocket listener (over TLS when `tls` is set too); every
    // accepted connection gets a WsSession and the handler sees only the
    // payload of binary frames.
    std::shared_ptr<const WsConfig> ws;
    // Non-empty: a unix-domain stream socket at this absolute path instead of
    // host:port (no tls or ws). Create() replaces a stale socket file left by
    // a crashed process, refuses a path something still accepts on or that is
    // not a socket, and applies the mode and owner below before listen(), so
    // no client connects through looser permissions; Join() (or the
    // destructor) removes the file.
    std::string unix_path;
    int unix_mode = -1;                       // permission bits; -1: as the umask leaves them
    uid_t unix_uid = static_cast<uid_t>(-1);  // -1: unchanged (see chown(2))
    gid_t unix_gid = static_cast<gid_t>(-1);
    // Connections open at once on this listener, over all shards; 0: only
    // the group-wide max_connections. Accepted sockets beyond it are closed
    // at once (counted in rejected_listener_max_connections).
    uint32_t max_connections = 0;
    // Every connection starts with a PROXY protocol v1/v2 header (read before
    // TLS and WebSocket); the handler hears of it only once the header is in,
    // with the client address the header names. No header, a malformed one or
    // none within proxy_header_timeout: closed (rejected_proxy_header).
    bool proxy_protocol = false;
  };

  struct Options {
    int shard_count = 1;
    std::vector<ListenAddress> listeners;
    // cpus[i % size] is the CPU shard i is pinned to; empty: no pinning.
    std::vector<int> cpus;
    // Total open connections over the group; accepted sockets beyond it are
    // closed at once (counted in rejected_max_connections).
    int64_t max_connections = 100000;
    // Per source address: connections open at once and new ones per second
    // (AddressLimiter); 0 turns either off.
    AddressLimiter::Options address_limits;
    // How long a connection on a proxy_protocol listener may take to send its
    // PROXY header (the broker passes its connect timeout).
    std::chrono::milliseconds proxy_header_timeout{10000};
    // Provided-buffer ring per shard: count (power of two) x size bytes.
    uint32_t recv_buffer_count = 512;
    uint32_t recv_buffer_size = 16 * 1024;
    // Mailbox capacity (items) per ordered pair of shards. 0 = automatic:
    // each shard's inbound mailboxes share kInboundMailBudget slots (24 bytes
    // each), at least kMinMailboxCapacity per source. A mailbox must hold a
    // loop turn's worth of publishes: one turn can decode thousands from a
    // few receive buffers, and what does not fit goes through the overflow
    // queue and pauses its reader (p2p across 2 shards: 4096 slots sent 85 %
    // of messages that way, at 17 % more CPU per message than 65536 slots).
    uint32_t mailbox_capacity = 0;
    // How long Stop() lets connections flush before aborting them.
    std::chrono::milliseconds shutdown_flush_timeout{3000};
    int listen_backlog = 1024;
    bool tcp_nodelay = true;
    // Batched waiting, trading latency for CPU at low message rates. When
    // non-zero (and the kernel has IORING_FEAT_MIN_TIMEOUT, Linux 6.12, and the
    // ring uses DEFER_TASKRUN), a shard with nothing to do sleeps until 64
    // completions are pending, or until `batch_wait` has passed and at least
    // one is: one wake-up then serves many messages, and their sends leave in
    // one submit. Costs up to `batch_wait` of latency while traffic is light;
    // under load the 64 completions come first and nothing changes. Ignored
    // (0) where unsupported. bench/RESULTS.md has the measured trade-off
    // (1,000 clients at 20 msg/s: CPU per message -53% at 1 ms, p99 latency of
    // fan-out at 5,000/s 0.35 -> 1.2 ms).
    std::chrono::microseconds batch_wait{0};
  };

  // Called once per shard, on that shard's thread, before its loop starts.
  using HandlerFactory = std::function<std::unique_ptr<ShardHandler>(Shard&)>;

  // Probes io_uring (fails with a message saying why it is unusable and how to
  // fix it), binds every listener on every shard (SO_REUSEPORT; a unix socket
  // once, shared by every shard) and builds the mailboxes. No thread runs yet.
  static absl::StatusOr<std::unique_ptr<ShardGroup>> Create(const Options& options,
                                                            HandlerFactory factory);

  // Starts the shard threads; returns once every shard has set up its ring
  // (or the first error). Call once.
  absl::Status Start();

  // Asks every shard to stop: close listeners, OnShutdown(), flush (bounded by
  // shutdown_flush_timeout), close everything, exit. Returns immediately.
  // Any thread; idempotent.
  void Stop();

  // Waits for every shard thread to exit, delivers mail still sitting in
  // mailboxes to the target handlers (on this thread), closes fds of
  // undelivered hand-offs, then destroys the handlers. Returns the summed
  // shutdown report.
  ShutdownReport Join();

  // Runs `task` on shard `shard`'s thread, with its handler, during its next
  // loop turn (shard/external_mailbox.h). For threads that are not shards;
  // any thread once Start() has returned. Returns false, and destroys the
  // task without running it, before Start(), once the shard has left its loop
  // (stopping), and after Join(). Tasks still queued when the shard leaves
  // its loop are destroyed unrun then, on the shard's thread.
  bool PostExternal(int shard, ExternalMailbox::Task task);

  // "127.0.0.1:41883" (or "unix:/run/mqtt.sock"), one per configured
  // listener, with the real port.
  std::vector<std::string> BoundAddresses() const;
  std::vector<uint16_t> BoundPorts() const;

  int shard_count() const { return static_cast<int>(shards_.size()); }
  // Counters of shard i (any thread, relaxed reads).
  const ShardCounters& counters(int shard) const { return shards_[shard]->counters(); }
  const RingConfig& ring_config() const { return ring_config_; }
  // Total connections open across the group (any thread).
  int64_t open_connections() const { return open_connections_.load(std::memory_order_relaxed); }

  // Changes Options::max_connections and Options::address_limits while the
  // group runs (any thread, before or after Start()). They apply to sockets
  // accepted from then on; connections already open are never closed for
  // them, so a lowered bound is reached by attrition.
  void SetConnectionLimits(int64_t max_connections, const AddressLimiter::Options& per_address);
  int64_t max_connections() const { return max_connections_.load(std::memory_order_relaxed); }
  AddressLimiter::Options address_limits() const { return address_limiter_->options(); }

  ~ShardGroup();

 private:
  friend class Shard;
  ShardGroup() = default;
  void ThreadMain(int index);

  Options options_;
  HandlerFactory factory_;
  RingConfig ring_config_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<std::unique_ptr<ShardHandler>> handlers_;
  // mailboxes_[from * n + to]; null on the diagonal.
  std::vector<std::unique_ptr<SpscRing<MailItem>>> mailboxes_;
  std::vector<std::string> bound_addresses_;
  std::vector<uint16_t> bound_ports_;
  std::vector<std::thread> threads_;
  std::atomic<int64_t> open_connections_{0};
  // Per listener: connections open on it, kept only for listeners with a
  // max_connections (a shared cache line costs nothing to those without).
  std::unique_ptr<std::atomic<int64_t>[]> listener_open_;
  // Options::max_connections, changeable at run time (relaxed: one bound,
  // read once per accept).
  std::atomic<int64_t> max_connections_{0};
  std::unique_ptr<AddressLimiter> address_limiter_;
  // Whether listener `index` counts its open connections.
  bool ListenerBounded(int index) const {
    return index >= 0 && options_.listeners[static_cast<size_t>(index)].max_connections != 0;
  }
  // A connection's fd was closed: uncount it (any shard thread).
  void ConnectionClosed(int listener_index, AddressLimiter::Key address_key, int64_t now_ns) {
    open_connections_.fetch_sub(1, std::memory_order_relaxed);
    if (ListenerBounded(listener_index)) {
      listener_open_[listener_index].fetch_sub(1, std::memory_order_relaxed);
    }
    if (address_key != AddressLimiter::kNoKey) address_limiter_->Release(address_key, now_ns);
  }
  // The socket files of unix listeners, removed by Join() or the destructor
  // if the path still names the socket this group bound (not one a later
  // process put there).
  struct UnixSocketFile {
    std::string path;
    dev_t device = 0;
    ino_t inode = 0;
  };
  std::vector<UnixSocketFile> unix_files_;
  // Binds unix listener `index` once and gives every shard its own dup of it.
  absl::Status BindUnixOnEveryShard(int index);
  void RemoveUnixSocketFiles();
  std::vector<ShutdownReport> reports_;
  bool started_ = false;
  bool joined_ = false;
  // Stop() may run on any thread (a signal waiter) while Join() and the
  // destructor run on another: Stop() writes to each shard's eventfd, which
  // the shard's destructor closes. The mutex orders the two, and
  // stop_disabled_ makes a Stop() after the shards are gone a no-op instead
  // of a write to a closed (or reused) fd.
  std::mutex stop_mutex_;
  bool stop_disabled_ = false;
  // One per shard; PostExternal pushes under stop_mutex_ so that, like Stop,
  // it never writes to the eventfd of a shard being destroyed.
  std::vector<std::unique_ptr<ExternalMailbox>> external_;

  // Start-up handshake: each thread reports its init status, then waits for go.
  std::atomic<int> init_done_{0};
  std::atomic<bool> go_{false};
  std::atomic<bool> abort_start_{false};
  std::atomic<int> loops_done_{0};  // shards whose loop has ended
  std::vector<absl::Status> init_status_;
};

}  // namespace shardmq::shard
