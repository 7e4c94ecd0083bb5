// The shard reactor: one thread, one io_uring ring, its connections, timers
// and mailboxes. Knows nothing of MQTT; the broker plugs in as a ShardHandler.
//
// Threading: a Shard is created and owned by a ShardGroup (shard/shard_group.h).
// Every ShardHandler callback runs on the shard's own thread, and every Shard
// method below may be called only from that thread (from inside a handler
// callback or a timer callback), unless it says otherwise. The shard thread
// never blocks except inside io_uring_submit_and_wait.
//
// Loop turn, in order:
//   1. read the clock once (Now())
//   2. process completions: accepts (OnOpen), receives (OnData), closes (OnClosed)
//   3. drain every inbound mailbox in batches (OnMail, hand-offs -> OnOpen)
//   4. run expired timers
//   5. OnLoopTurnEnd()
//   6. move mailbox overflow into mailboxes, publish each mailbox tail once,
//      resume connections whose back-pressure cleared, wake sleeping targets
//   7. one gathered sendmsg per connection with queued output
//   8. submit, and block only if there is nothing to do
//
// Example handler (echo):
//   class Echo : public ShardHandler {
//    public:
//     explicit Echo(Shard& s) : shard_(s) {}
//     void OnOpen(ConnId id, const PeerInfo&, absl::Span<const uint8_t> b) override {
//       if (!b.empty()) shard_.Send(id, b);
//     }
//     void OnData(ConnId id, absl::Span<const uint8_t> b) override { shard_.Send(id, b); }
//     ...
//     Shard& shard_;
//   };
#pragma once

#include <liburing.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "shard/address_limiter.h"
#include "shard/spsc_ring.h"
#include "shard/timer_heap.h"
#include "shard/types.h"

namespace shardmq::shard {

class Shard;
class ShardGroup;
class TlsSession;
class WsSession;

// Implemented by the upper layer (the broker); one instance per shard, created
// by the ShardGroup's factory on the shard's thread. Every call happens on that
// shard's thread. Callbacks may call any Shard method; the runtime never calls
// back into the handler from inside a Shard method (OnClosed for a connection
// closed by Close/Abort/HandOff is delivered later in the same loop turn).
class ShardHandler {
 public:
  virtual ~ShardHandler() = default;

  // A connection was accepted on this shard, or handed off to it. For a
  // hand-off, `initial_bytes` are the bytes the old shard had already read
  // (they come before anything OnData delivers). The span is valid only during
  // the call. On a TLS listener OnOpen comes at accept, before the handshake,
  // so the handler's connect timeout also bounds a stalled handshake; bytes
  // (initial_bytes, OnData) are always plaintext. On a proxy_protocol
  // listener OnOpen comes only once the PROXY header is in, with the client
  // address it names as `peer` (also after a hand-off), and empty
  // initial_bytes: what followed the header arrives through OnData.
  virtual void OnOpen(ConnId id, const PeerInfo& peer, absl::Span<const uint8_t> initial_bytes) = 0;

  // Bytes received. The span points into the shard's provided-buffer ring and
  // is valid only during the call (the buffer is recycled right after): copy
  // what you keep. After PauseReading() a few more OnData calls may still come
  // for data the kernel had already received.
  virtual void OnData(ConnId id, absl::Span<const uint8_t> bytes) = 0;

  // The connection is gone; `id` is stale from now on (UserData(id) already
  // returns nullptr), so the pointer last given to SetUserData comes along
  // for the handler to release. Called exactly once per OnOpen.
  virtual void OnClosed(ConnId id, CloseReason reason, void* user_data) = 0;

  // An item another shard posted with Shard::Post(target = this shard).
  // Items from one source shard arrive in the order they were posted.
  virtual void OnMail(int from_shard, const MailItem& item) = 0;

  // Called once per loop turn after completions, mail and timers, just before
  // queued output is sent. Flush batched work here.
  virtual void OnLoopTurnEnd() {}

  // Called once per loop turn just before the mail posted in it becomes
  // visible to the other shards: after OnLoopTurnEnd and any OnClosed that
  // followed it, so nothing the handler posts later in the turn is missed.
  // Post here what was held back to go as one item (Shard::PostBulk).
  virtual void OnMailFlush() {}

  // ShardGroup::Stop() was called: listeners are closed already. Queue final
  // bytes (e.g. MQTT 5 DISCONNECT 0x8B) now; afterwards every connection is
  // flushed (bounded time) and closed with CloseReason::kShutdown.
  virtual void OnShutdown() {}
};

// Per-shard counters. Written only by the owning shard (relaxed
// load+store, no locked instructions); readable from any thread with relaxed
// loads. Values are monotonic totals.
struct ShardCounters {
  std::atomic<uint64_t> loop_turns{0};
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> rejected_max_connections{0};
  // Accepted sockets closed at once because their listener had its own
  // max_connections open (ShardGroup::ListenAddress::max_connections).
  std::atomic<uint64_t> rejected_listener_max_connections{0};
  // Accepted sockets closed at once because their source address had too
  // many connections open, or opened them too fast (AddressLimiter).
  std::atomic<uint64_t> rejected_per_address{0};
  std::atomic<uint64_t> rejected_connect_rate{0};
  // Connections on a proxy_protocol listener closed before the handler heard
  // of them: no PROXY header, a malformed one, or none within the timeout.
  std::atomic<uint64_t> rejected_proxy_header{0};
  std::atomic<uint64_t> accept_errors{0};
  std::atomic<uint64_t> closed{0};
  std::atomic<uint64_t> handoffs_out{0};
  std::atomic<uint64_t> handoffs_in{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> sends{0};
  std::atomic<uint64_t> partial_sends{0};
  std::atomic<uint64_t> recv_rearms{0};
  std::atomic<uint64_t> recv_enobufs{0};
  std::atomic<uint64_t> mail_pushed{0};      // items this shard put into mailboxes
  std::atomic<uint64_t> mail_full{0};        // Post() found a mailbox full / overflow non-empty
  std::atomic<uint64_t> mail_received{0};    // items this shard drained
  std::atomic<uint64_t> wakeups_sent{0};     // MSG_RING wake-ups to sleeping targets
  std::atomic<uint64_t> wakeups_skipped{0};  // publishes whose target was awake
  std::atomic<uint64_t> sleeps{0};           // times this shard blocked
  std::atomic<uint64_t> reads_paused{0};     // back-pressure pauses (mailbox overflow)
  std::atomic<uint64_t> timers_fired{0};
  // TLS connections closed for a failed handshake (bad or missing client
  // certificate, plain TCP on a TLS port) or a TLS protocol error.
  std::atomic<uint64_t> tls_failures{0};
  // WebSocket connections closed for a refused Upgrade request (answered
  // with HTTP 400) or a WebSocket protocol error (text or unmasked frames...).
  std::atomic<uint64_t> ws_failures{0};
  // RefCounted objects whose last reference this shard dropped and sent back
  // to the shard that made them, and the batches they travelled in.
  std::atomic<uint64_t> refs_returned{0};
  std::atomic<uint64_t> return_batches{0};
  // Returned objects this shard freed for other shards' last Unref().
  std::atomic<uint64_t> refs_freed_for_others{0};
  // Loop utilisation: nanoseconds spent blocked waiting for work, and the
  // monotonic time (ns) the loop started; busy time is the rest. Two clock
  // reads per sleep, none per busy turn.
  std::atomic<uint64_t> sleep_ns{0};
  std::atomic<int64_t> loop_started_ns{0};
  // When the current sleep began (monotonic ns), 0 while awake: a shard
  // idle for minutes has not finished a sleep, and a reader must not count
  // that time as busy.
  std::atomic<int64_t> sleeping_since_ns{0};

  static void Inc(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

// What a shard did during shutdown (for logging).
struct ShutdownReport {
  uint64_t listeners_closed = 0;
  uint64_t connections_flushed = 0;  // closed after their output drained
  uint64_t connections_aborted = 0;  // still had output at the deadline
  uint64_t handoffs_closed = 0;      // hand-offs that arrived too late (fd closed)
  uint64_t mail_delivered_late = 0;  // mail delivered by Join() after the loop ended
};

// Ring setup chosen at start-up (same for every shard of a group).
struct RingConfig {
  unsigned flags = 0;       // IORING_SETUP_* actually used
  std::string description;  // e.g. "SINGLE_ISSUER|DEFER_TASKRUN|COOP_TASKRUN"
};

class Shard {
 public:
  // ---- Identity and time (shard thread; id()/shard_count() from any thread) --
  int id() const { return id_; }
  int shard_count() const { return shard_count_; }
  // Monotonic time read once per loop turn (cached; nanosecond resolution).
  Clock::time_point Now() const { return now_; }
  int64_t NowNs() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(now_.time_since_epoch()).count();
  }

  // ---- Output ------------------------------------------------------------
  // Copies `bytes` into the connection's output queue (appended to the last
  // copy block when it fits). Returns false for a stale/closing id.
  bool Send(ConnId id, absl::Span<const uint8_t> bytes);
  // Queues `bytes` without copying. The runtime takes a reference on `owner`
  // (owner->Ref()) and drops it exactly once (owner->Unref()) when the kernel
  // has sent those bytes or the connection died. `bytes` must stay valid and
  // unchanged while the reference is held. Returns false (and takes no
  // reference) for a stale/closing id.
  bool SendShared(ConnId id, absl::Span<const uint8_t> bytes, const RefCounted* owner);
  // Room for exactly `size` more output bytes of a plain TCP connection,
  // already queued: the caller writes all of them before it returns to the
  // loop. Saves encoding into a buffer of its own and copying that. nullptr
  // for a stale/closing id and for TLS and WebSocket connections, whose
  // bytes are transformed on the way (use Send).
  uint8_t* SendInPlace(ConnId id, size_t size);
  // Bytes queued for the connection and not yet acknowledged by a completed
  // send (0 for a stale id).
  size_t QueuedBytes(ConnId id) const;

  // ---- Lifetime ----------------------------------------------------------
  // Stops reading, flushes queued output, then closes. The id is stale at once;
  // OnClosed(kClosedByUs) follows later in this loop turn.
  bool Close(ConnId id);
  // Closes without flushing; OnClosed(kAborted) follows later in this turn.
  bool Abort(ConnId id);
  // Moves the connection to `target_shard`: stops reading here, flushes output
  // already queued, then passes the fd and `already_read` (plus any bytes that
  // arrive before the receive is cancelled) through the mailbox; the target's
  // handler gets OnOpen(new id, peer, those bytes). The id is stale at once;
  // OnClosed(kHandedOff) follows later in this turn. `already_read` is copied.
  bool HandOff(ConnId id, int target_shard, absl::Span<const uint8_t> already_read);

  // ---- Reading control ---------------------------------------------------
  // Explicit back-pressure (e.g. the outbound queue of a subscriber is full).
  // Independent of the runtime's own mailbox back-pressure: reading resumes
  // only when neither holds it.
  bool PauseReading(ConnId id);
  bool ResumeReading(ConnId id);

  // ---- Per-connection user pointer ---------------------------------------
  // Stores/returns an opaque pointer (nullptr initially). UserData of a stale
  // id returns nullptr.
  bool SetUserData(ConnId id, void* data);
  void* UserData(ConnId id) const;
  bool IsOpen(ConnId id) const;

  // ---- TLS (connections accepted on a TLS listener) ----------------------
  // Whether the connection is TLS. Its handler sees only plaintext: OnData
  // starts after the handshake, Send/SendShared encrypt (SendShared copies).
  bool IsTls(ConnId id) const;
  // The verified client certificate's subject CN (else first DNS SAN); empty
  // for plain TCP, before the handshake, or without a verified certificate.
  // Survives a hand-off (the TLS state moves with the fd).
  std::string TlsPeerIdentity(ConnId id) const;

  // ---- WebSocket (connections accepted on a ws:// or wss:// listener) -----
  // Like TLS, invisible to the handler: OnData carries the payload of binary
  // frames once the Upgrade handshake is done, each Send/SendShared becomes
  // one binary frame (SendShared copies), Close sends a close frame first.
  // A peer's close frame or a protocol error closes the connection
  // (OnClosed with kPeerClosed or kError).
  bool IsWebSocket(ConnId id) const;

  // ---- Cross-shard mail --------------------------------------------------
  // Posts `item` to `target_shard` (!= id()). Never loses: if the mailbox is
  // full the item is kept in an in-order per-target overflow queue, and the
  // connection whose OnData is running (if any) stops reading until that
  // overflow drains. Returns true if the item went straight into the mailbox,
  // false if it was queued in overflow. Items become visible to the target at
  // the end of this loop turn (one publish per turn).
  bool Post(int target_shard, const MailItem& item) {
    SHARDMQ_CHECK(item.kind < kBulkBit);
    SHARDMQ_CHECK(target_shard >= 0 && target_shard < shard_count_ && target_shard != id_);
    return PostImpl(target_shard, item.kind, item.aux, item.ptr, item.arg, UINT64_MAX);
  }
  // Post() for an item that stands for up to kBulkItemWeight others (say, a
  // batch of messages). The mailbox takes it only while it holds fewer than
  // 16,384 / kBulkItemWeight items (and fewer than its capacity allows);
  // past that it goes to the overflow like any item that finds the mailbox
  // full, pausing the current reader. So a receiver that falls behind has
  // at most ~16,384 messages' work waiting from each source, which one turn
  // takes, and back-pressure sets in that early.
  static constexpr size_t kBulkItemWeight = 32;
  bool PostBulk(int target_shard, const MailItem& item) {
    SHARDMQ_CHECK(item.kind < kBulkBit);
    SHARDMQ_CHECK(target_shard >= 0 && target_shard < shard_count_ && target_shard != id_);
    return PostImpl(target_shard, item.kind, item.aux, item.ptr, item.arg, BulkLimit(target_shard));
  }

  // ---- Timers ------------------------------------------------------------
  TimerId ScheduleTimer(Clock::duration delay, absl::AnyInvocable<void()> callback);
  bool CancelTimer(TimerId id);

  // ---- File I/O (the store's log) ----------------------------------------
  // Writes and syncs of regular files through this shard's ring, so the shard
  // never blocks on a disk (the kernel runs buffered writes and syncs on its
  // own workers). `done` runs on this shard's thread in a later loop turn with
  // the result: bytes written (a short write is possible: write the rest), 0
  // for a sync, or -errno. Operations are not ordered among themselves: sync
  // only after the writes it must cover have completed. `bytes` must stay
  // valid and unchanged until `done` runs. At shutdown the loop waits for
  // pending file operations (their callbacks run; new ones may be issued from
  // them) before it ends, up to 10 s past the flush timeout.
  using FileDone = absl::AnyInvocable<void(int result)>;
  void WriteFile(int fd, uint64_t offset, absl::Span<const uint8_t> bytes, FileDone done);
  // pread(2) into `into` (which must stay valid until `done`): bytes read
  // (short at the end of the file), or -errno. The broker reads messages
  // kept only in its log back with it (--max-memory).
  void ReadFile(int fd, uint64_t offset, absl::Span<uint8_t> into, FileDone done);
  // fdatasync(2): the data written so far, and the size, are on stable storage.
  void SyncFile(int fd, FileDone done);
  // unlinkat(2) of `path` relative to the directory `dir_fd` (IORING_OP_UNLINKAT,
  // kernel 5.11+): the store deletes compacted segments with it. The entry's
  // removal is durable once the directory is synced (SyncFile on its fd).
  void UnlinkFile(int dir_fd, std::string path, FileDone done);
  size_t pending_file_ops() const { return file_ops_pending_; }

  // ---- Introspection (any thread) ----------------------------------------
  const ShardCounters& counters() const { return counters_; }
  // Whether Options::batch_wait is in effect (the kernel supports it).
  bool batch_wait_active() const { return batch_wait_us_ > 0; }
  // Connections currently open on this shard (shard thread only).
  size_t open_connections() const { return open_count_; }

  ~Shard();

 private:
  friend class ShardGroup;
  struct Conn;
  struct OutChunk;
  struct SendCtx;
  struct Listener;
  struct HandoffPayload;
  struct ProxyState;
  struct ReturnBatch;
  enum class ConnState : uint8_t;
  friend class RefCounted;

  Shard(ShardGroup* group, int id, int shard_count);
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Thread entry and set-up (called by ShardGroup).
  absl::Status InitOnThread(unsigned ring_flags);
  void AddListener(int fd, int listener_index);
  // Releases a runtime mail item that Join() found undelivered: closes a
  // hand-off's fd (returns true, with what to uncount) or frees a return
  // batch (returns false).
  static bool DiscardInternalMail(const MailItem& item, int* listener_index,
                                  AddressLimiter::Key* address_key);
  void Run();
  void RequestStop();  // any thread

  // Loop pieces.
  void ProcessCompletions();
  void HandleCqe(const io_uring_cqe* cqe);
  void OnAcceptCqe(uint32_t listener_index, int res, uint32_t flags);
  void OnRecvCqe(uint32_t index, int res, uint32_t flags);
  void OnSendCqe(uint32_t index, int res);
  void OnFileCqe(uint32_t slot, int res);
  uint32_t TakeFileSlot(FileDone done);
  void DrainMailboxes();
  void HandleInternalMail(int from, const MailItem& item);
  void FlushOutboundMail();
  void FlushSends();
  void RearmReceives();
  void DispatchDeferredCloses();
  void WaitForWork();
  bool HasInboundMail() const;
  void BeginShutdown();
  void ShutdownTick();
  void FinalDrain();

  // Connections. AdmitCount counts a fresh socket against the group's and
  // its listener's bounds, AdmitAddress asks the group's AddressLimiter about
  // it (each counting and logging a refusal); AcceptAdmitted sets it up.
  bool AdmitCount(int listener_index);
  bool AdmitAddress(const PeerInfo& peer, AddressLimiter::Key* key);
  void AcceptAdmitted(int fd, const PeerInfo& peer, AddressLimiter::Key key);
  ConnId AdoptConnection(int fd, const PeerInfo& peer, AddressLimiter::Key address_key,
                         absl::Span<const uint8_t> initial,
                         std::unique_ptr<TlsSession> tls = nullptr,
                         std::unique_ptr<WsSession> ws = nullptr);
  // AdoptConnection in two steps: a slot (receive not armed yet), then
  // OnOpen and the transforms' first pump.
  uint32_t NewConn(int fd, int listener_index, AddressLimiter::Key address_key,
                   std::unique_ptr<TlsSession> tls, std::unique_ptr<WsSession> ws);
  ConnId OpenConn(uint32_t index, const PeerInfo& peer, absl::Span<const uint8_t> initial);
  // PROXY protocol listeners: the connection reads its header first
  // (kProxyHeader, unknown to the handler), then opens with the header's
  // address and passes the bytes after it on; or is dropped.
  void AwaitProxyHeader(int fd, const PeerInfo& peer, std::unique_ptr<TlsSession> tls,
                        std::unique_ptr<WsSession> ws);
  void OnProxyBytes(uint32_t index, absl::Span<const uint8_t> bytes);
  void OpenProxied(uint32_t index, absl::Span<const uint8_t> after_header);
  void RefuseProxyHeader(uint32_t index, std::string_view why);
  // Closes a connection the handler never heard of (no OnClosed).
  void DropUnopened(uint32_t index);
  // Runs the transforms (TLS, then WebSocket) after bytes arrived: handshake
  // answers, alerts and control frames go to the output queue, the
  // handler's bytes to OnData. Closes the connection when one fails.
  void PumpTransforms(uint32_t index);
  // Moves the session's pending ciphertext into the output queue.
  void QueueTlsOutput(uint32_t index);
  // Queues bytes below the WebSocket layer: encrypted on TLS, else copied.
  // False (and the connection is being aborted) when TLS failed.
  bool QueueOutput(uint32_t index, absl::Span<const uint8_t> bytes);
  // Moves the WebSocket session's pending output into QueueOutput.
  bool QueueWsOutput(uint32_t index);
  bool QueueCopy(uint32_t index, absl::Span<const uint8_t> bytes);
  // QueueCopy's allocation: `size` bytes at the end of the copy blocks.
  uint8_t* AppendCopy(uint32_t index, size_t size);
  Conn* Lookup(ConnId id);
  const Conn* Lookup(ConnId id) const;
  void ArmRecv(uint32_t index);
  void CancelRecv(uint32_t index);
  bool ReadingWanted(const Conn& c) const;
  void StartClosing(uint32_t index, CloseReason reason, bool flush);
  void MaybeFinalize(uint32_t index);
  void ReleaseOutput(Conn& c);
  void ConsumeOutput(Conn& c, size_t n);
  void MarkDirty(uint32_t index);
  void ArmAccept(uint32_t listener_index);
  // Post() without its checks; kinds >= kMailKindReservedBase are the
  // runtime's own and never pause the current reader. The mailbox counts as
  // full once it holds `limit` items (or its capacity).
  bool PostImpl(int target, uint32_t kind, uint32_t aux, void* ptr, uint64_t arg, uint64_t limit);
  // How many items the mailbox to `target` may hold for PostBulk to add one.
  uint64_t BulkLimit(int target) const;
  // An overflow entry PostBulk made carries this bit in its kind, so it is
  // moved on to the mailbox no faster than BulkLimit allows; the bit is
  // cleared then (a mailbox slot never has it, OnMail never sees it).
  static constexpr uint32_t kBulkBit = 0x4000'0000u;
  static bool IsBulk(const MailItem& item) {
    return item.kind < kMailKindReservedBase && (item.kind & kBulkBit) != 0;
  }
  // Moves the oldest overflow item for `target` into its mailbox, if there
  // is room for it; false if not.
  bool MoveOverflowItem(int target);
  // Return batches (see RefCounted): queue `obj` for its owner, post full and
  // (once per turn) partial batches, free what other shards sent back.
  void ReturnToOwner(const RefCounted* obj);
  void PostReturnBatches();
  static void FreeReturnBatch(ReturnBatch* batch);
  void ReturnBuffer(uint16_t bid);

  // Submission helpers.
  io_uring_sqe* GetSqe();
  void WakeTarget(int target);

  ShardGroup* const group_;
  const int id_;
  const int shard_count_;
  ShardHandler* handler_ = nullptr;
  io_uring ring_{};
  bool ring_ready_ = false;
  unsigned ring_flags_ = 0;
  uint32_t batch_wait_us_ = 0;  // Options::batch_wait, 0 if off or unsupported
  Clock::time_point now_{};
  // When the current sleep began (WaitForWork); accounted and reset at the
  // next loop turn. Default: not sleeping.
  Clock::time_point sleep_start_{};

  // Provided buffer ring (shared by all connections of this shard).
  io_uring_buf_ring* buf_ring_ = nullptr;
  size_t buf_ring_bytes_ = 0;
  uint8_t* buffers_ = nullptr;
  uint32_t buf_count_ = 0;
  uint32_t buf_size_ = 0;

  // Connection slab.
  std::vector<Conn> conns_;
  uint32_t free_head_ = UINT32_MAX;
  size_t open_count_ = 0;
  std::vector<uint32_t> dirty_;
  std::vector<uint32_t> rearm_;
  struct DeferredClose {
    ConnId id;
    CloseReason reason;
    void* user_data;
  };
  std::vector<DeferredClose> deferred_closes_;
  ConnId current_conn_{};  // the connection whose OnData is running
  // The handler's bytes for one OnData call after TLS or WebSocket, and
  // decrypted bytes on their way from TLS into WebSocket.
  std::vector<uint8_t> tls_plain_;
  std::vector<std::unique_ptr<SendCtx>> send_ctx_free_;

  std::vector<std::unique_ptr<Listener>> listeners_;
  bool nodelay_checked_ = false;    // the first accepted socket was looked at
  bool nodelay_inherited_ = false;  // accepted sockets inherit TCP_NODELAY

  // Mailboxes. inbound_[s] is the ring s -> this shard (owned by the group);
  // outbound_[t] is the ring this -> t. overflow_[t] holds items that did not
  // fit, in order; paused_by_[t] the connections paused because of it.
  std::vector<SpscRing<MailItem>*> inbound_;
  std::vector<SpscRing<MailItem>*> outbound_;
  std::vector<std::deque<MailItem>> overflow_;
  std::vector<std::vector<ConnId>> paused_by_;
  std::vector<bool> needs_wake_check_;
  // Per target: something other than a return batch was posted and not yet
  // announced, so a sleeping target must be woken. Return batches alone never
  // wake a shard: they are freed at its next turn.
  std::vector<bool> wake_wanted_;
  std::vector<ReturnBatch*> return_batch_;  // per owner shard, being filled

  // Sleep/wake. `sleeping_` is set by this shard just before blocking and read
  // by producers after they publish (see WaitForWork / WakeTarget).
  alignas(kCacheLineSize) std::atomic<bool> sleeping_{false};
  std::atomic<bool> stop_requested_{false};
  // True while any overflow_ queue is non-empty. A consumer that drains our
  // mailbox reads it (relaxed) and wakes us if we sleep, so the overflow moves
  // on without waiting for the 1 ms poll.
  std::atomic<bool> has_overflow_{false};
  int event_fd_ = -1;
  uint64_t event_buf_ = 0;

  TimerHeap timers_;

  // Shutdown state.
  bool stopping_ = false;
  bool final_drain_ = false;
  bool done_ = false;
  Clock::time_point stop_deadline_{};
  ShutdownReport report_;
  uint64_t inflight_ops_ = 0;

  // File operations in flight: slot -> callback (empty slots are free and
  // listed in free_file_slots_).
  std::vector<FileDone> file_ops_;
  std::vector<uint32_t> free_file_slots_;
  size_t file_ops_pending_ = 0;

  alignas(kCacheLineSize) ShardCounters counters_;
};

}  // namespace shardmq::shard
