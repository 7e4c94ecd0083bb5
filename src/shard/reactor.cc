#include "shard/reactor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>

#include "absl/strings/str_format.h"
#include "base/check.h"
#include "base/log.h"
#include "base/log_throttle.h"
#include "net/proxy_protocol.h"
#include "shard/shard_group.h"
#include "shard/tls_session.h"
#include "shard/ws_session.h"

namespace shardmq::shard {

const char* CloseReasonName(CloseReason reason) {
  switch (reason) {
    case CloseReason::kPeerClosed:
      return "peer closed";
    case CloseReason::kError:
      return "error";
    case CloseReason::kClosedByUs:
      return "closed";
    case CloseReason::kAborted:
      return "aborted";
    case CloseReason::kHandedOff:
      return "handed off";
    case CloseReason::kShutdown:
      return "shutdown";
  }
  return "?";
}

std::string PeerInfo::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    return absl::StrFormat("%s:%d", buf, ntohs(a->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
    return absl::StrFormat("[%s]:%d", buf, ntohs(a->sin6_port));
  }
  if (addr.ss_family == AF_UNIX) {
    // A client's end of a unix socket almost never has a name.
    const auto* a = reinterpret_cast<const sockaddr_un*>(&addr);
    const size_t offset = offsetof(sockaddr_un, sun_path);
    if (addr_len <= offset || a->sun_path[0] == '\0') return "unix";
    return absl::StrFormat("unix:%s",
                           std::string_view(a->sun_path, strnlen(a->sun_path, addr_len - offset)));
  }
  return "unknown";
}

namespace {

// Plaintext encrypted per SSL_write in Send (a bit over one 16 KiB record).
constexpr size_t kTlsWriteSlice = 16 * 1024;

// user_data layout: op (8 bits) | generation low 24 bits | index (32 bits).
enum Op : uint8_t {
  kOpAccept = 1,
  kOpRecv = 2,
  kOpSend = 3,
  kOpCancel = 4,
  kOpEvent = 5,
  kOpMsgRing = 6,  // our own MSG_RING SQE (CQE only on failure: CQE_SKIP_SUCCESS)
  kOpWake = 7,     // CQE posted into our ring by another shard's MSG_RING
  kOpFile = 8,     // a file write or sync (index: the callback's slot)
};
constexpr uint32_t kGenMask = 0xFFFFFF;
constexpr uint16_t kBufGroup = 1;
constexpr size_t kMaxIov = 64;
// Mail drained per source per turn: everything published when the drain
// starts (at most the mailbox capacity: 65536 with 2 shards, ~4 ms of work).
// The more of it a turn takes, the more messages each subscriber's one send
// per turn carries: 256 -> all cut cross-shard CPU per message by ~14%.
constexpr size_t kMailBatch = SIZE_MAX;
// Messages a mailbox may hold in bulk items (Shard::PostBulk): a turn's
// drain delivers them all, and what one turn delivers to one subscriber is
// output it holds until the turn's send. A fan-in subscriber handed a full
// mailbox of batches at once (65,536 messages, ~5 MB) went over
// --max-outbound-bytes and lost QoS 0 messages; 16,384 (~1.4 MB) do not.
constexpr size_t kBulkInFlight = 16384;
constexpr size_t kCopyBlock = 2048;
// A connection with this much output queued gets copy blocks up to this size:
// a send carries at most kMaxIov slices, so with 2 KiB blocks one send moved
// at most 128 KiB and a busy subscriber (fan-in) could not drain faster than
// one 128 KiB send per loop turn. Idle connections keep small blocks.
constexpr size_t kMaxCopyBlock = 64 * 1024;
constexpr uint32_t kMailHandoff = kMailKindReservedBase + 1;
// IORING_FEAT_MIN_TIMEOUT (Linux 6.12; newer than our liburing headers): the
// getevents argument's `pad` field is min_wait_usec.
constexpr unsigned kFeatMinTimeout = 1U << 15;
// Completions that end a batched wait early (Options::batch_wait).
constexpr unsigned kBatchWaitEvents = 64;
constexpr uint32_t kMailReturnBatch = kMailKindReservedBase + 2;
// Objects per return batch: 1 KiB batches, one mailbox slot per 127 frees.
constexpr uint32_t kReturnBatchSize = 127;

// The shard whose loop runs on this thread (Run() sets it), for
// RefCounted::DropLast().
thread_local Shard* tls_shard = nullptr;

uint64_t Ud(Op op, uint32_t index, uint32_t gen) {
  return (uint64_t{op} << 56) | (uint64_t{gen & kGenMask} << 32) | index;
}
Op UdOp(uint64_t ud) { return static_cast<Op>(ud >> 56); }
uint32_t UdGen(uint64_t ud) { return static_cast<uint32_t>(ud >> 32) & kGenMask; }
uint32_t UdIndex(uint64_t ud) { return static_cast<uint32_t>(ud); }

PeerInfo PeerOf(int fd, int listener_index) {
  PeerInfo p;
  p.addr_len = sizeof(p.addr);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&p.addr), &p.addr_len) != 0) p.addr_len = 0;
  p.listener_index = listener_index;
  return p;
}

}  // namespace

// kProxyHeader: accepted on a proxy_protocol listener, header not complete;
// the handler has not heard of the connection (no OnOpen yet).
enum class Shard::ConnState : uint8_t { kFree, kProxyHeader, kOpen, kClosing, kHandingOff };

// One queued output slice. Copy blocks own `owned` (capacity `cap`, bytes
// [0, len) queued); external slices reference `data` and hold `ref`.
struct Shard::OutChunk {
  const uint8_t* data = nullptr;
  uint32_t len = 0;
  uint32_t cap = 0;
  uint8_t* owned = nullptr;
  const RefCounted* ref = nullptr;
};

// Lives only while a send is in flight (not per idle connection).
struct Shard::SendCtx {
  msghdr msg{};
  iovec iov[kMaxIov];
};

struct Shard::Listener {
  int fd = -1;
  int index = 0;
  bool armed = false;
  bool closed = false;
};

struct Shard::ReturnBatch {
  uint32_t count = 0;
  const RefCounted* items[kReturnBatchSize];
};

struct Shard::HandoffPayload {
  int target = -1;
  int fd = -1;
  int listener_index = -1;
  AddressLimiter::Key address_key = AddressLimiter::kNoKey;  // released where it closes
  std::vector<uint8_t> bytes;  // plaintext already read (the handler's view)
  // TLS connections: the session moves with the fd (one thread at a time
  // uses it); ciphertext that arrived during the hand-off is in its read BIO.
  std::unique_ptr<TlsSession> tls;
  // WebSocket connections: likewise, with input not decoded yet inside.
  std::unique_ptr<WsSession> ws;
  // PROXY protocol connections: the client's address from the header, which
  // getpeername on the target would not give (it names the balancer).
  std::optional<PeerInfo> peer;
};

// A connection accepted on a proxy_protocol listener (about 170 bytes, off
// the slot so plain connections do not pay for it).
struct Shard::ProxyState {
  // The socket's peer (the balancer) until the header is in, then the
  // client's address from it. Kept for hand-offs.
  PeerInfo peer;
  // Bytes read while the header was incomplete; emptied once it is in.
  std::vector<uint8_t> header;
  TimerId timer;  // proxy_header_timeout
};

// A connection slot: 128 bytes, and nothing else while idle (no output, no
// hand-off): the receive buffers live in the shard's shared provided-buffer
// ring.
struct Shard::Conn {
  int fd = -1;
  uint32_t generation = 1;
  uint32_t next_free = UINT32_MAX;
  uint32_t head_offset = 0;  // bytes of out[0] already sent
  ConnState state = ConnState::kFree;
  CloseReason reason = CloseReason::kClosedByUs;
  bool recv_armed = false;
  bool recv_cancel_pending = false;
  bool send_inflight = false;
  bool user_paused = false;
  bool dirty = false;
  bool abort = false;
  bool in_rearm = false;
  int8_t listener_index = -1;
  uint16_t bp_pauses = 0;  // mailbox overflows currently holding this reader
  void* user_data = nullptr;
  size_t queued = 0;
  // Its count in the group's AddressLimiter, released when the fd closes.
  AddressLimiter::Key address_key = AddressLimiter::kNoKey;
  std::vector<OutChunk> out;
  SendCtx* send_ctx = nullptr;
  std::unique_ptr<HandoffPayload> handoff;
  std::unique_ptr<TlsSession> tls;    // null for plain TCP
  std::unique_ptr<WsSession> ws;      // null unless a ws:// or wss:// listener
  std::unique_ptr<ProxyState> proxy;  // null unless a proxy_protocol listener
};

Shard::Shard(ShardGroup* group, int id, int shard_count)
    : group_(group), id_(id), shard_count_(shard_count) {
  // Idle-connection budget: the slot is all the runtime keeps per idle
  // connection (receive buffers are shared per shard), far under 1 KiB.
  static_assert(sizeof(Conn) <= 128, "keep idle connections small");
  inbound_.assign(shard_count, nullptr);
  outbound_.assign(shard_count, nullptr);
  overflow_.resize(shard_count);
  paused_by_.resize(shard_count);
  needs_wake_check_.assign(shard_count, false);
  wake_wanted_.assign(shard_count, false);
  return_batch_.assign(shard_count, nullptr);
}

Shard::~Shard() {
  for (auto& c : conns_) {
    ReleaseOutput(c);
    if (c.fd >= 0) ::close(c.fd);
    delete c.send_ctx;
  }
  for (auto& l : listeners_) {
    if (!l->closed && l->fd >= 0) ::close(l->fd);
  }
  if (ring_ready_) io_uring_queue_exit(&ring_);
  if (buf_ring_ != nullptr) munmap(buf_ring_, buf_ring_bytes_);
  std::free(buffers_);
  if (event_fd_ >= 0) ::close(event_fd_);
}

bool Shard::DiscardInternalMail(const MailItem& item, int* listener_index,
                                AddressLimiter::Key* address_key) {
  if (item.kind == kMailReturnBatch) {
    FreeReturnBatch(static_cast<ReturnBatch*>(item.ptr));
    return false;
  }
  std::unique_ptr<HandoffPayload> h(static_cast<HandoffPayload*>(item.ptr));
  ::close(h->fd);
  *listener_index = h->listener_index;
  *address_key = h->address_key;
  return true;
}

// ---------------------------------------------------------------------------
// Return batches

void RefCounted::DropLast() const {
  Shard* s = tls_shard;
  if (s != nullptr && owner_ >= 0 && owner_ != s->id_ && owner_ < s->shard_count_) {
    s->ReturnToOwner(this);
  } else {
    delete this;
  }
}

void Shard::ReturnToOwner(const RefCounted* obj) {
  const int owner = obj->owner_;
  ReturnBatch*& b = return_batch_[owner];
  if (b == nullptr) b = new ReturnBatch;
  b->items[b->count++] = obj;
  ShardCounters::Inc(counters_.refs_returned);
  if (b->count == kReturnBatchSize) {
    PostImpl(owner, kMailReturnBatch, 0, b, 0, UINT64_MAX);
    ShardCounters::Inc(counters_.return_batches);
    b = nullptr;
  }
}

void Shard::PostReturnBatches() {
  for (int t = 0; t < shard_count_; ++t) {
    if (return_batch_[t] == nullptr) continue;
    PostImpl(t, kMailReturnBatch, 0, return_batch_[t], 0, UINT64_MAX);
    ShardCounters::Inc(counters_.return_batches);
    return_batch_[t] = nullptr;
  }
}

void Shard::FreeReturnBatch(ReturnBatch* batch) {
  for (uint32_t i = 0; i < batch->count; ++i) {
    if (i + 8 < batch->count) __builtin_prefetch(batch->items[i + 8], 1);
    delete batch->items[i];
  }
  delete batch;
}

void Shard::AddListener(int fd, int listener_index) {
  auto l = std::make_unique<Listener>();
  l->fd = fd;
  l->index = listener_index;
  listeners_.push_back(std::move(l));
}

absl::Status Shard::InitOnThread(unsigned ring_flags) {
  io_uring_params p{};
  p.flags = ring_flags | IORING_SETUP_CQSIZE;
  p.cq_entries = 16384;
  int ret = io_uring_queue_init_params(2048, &ring_, &p);
  if (ret < 0) {
    return absl::InternalError(
        absl::StrFormat("shard %d: io_uring_queue_init_params: %s", id_, strerror(-ret)));
  }
  ring_ready_ = true;
  ring_flags_ = ring_flags;
  const auto batch_wait = group_->options_.batch_wait.count();
  if (batch_wait > 0 && (p.features & kFeatMinTimeout) &&
      (ring_flags & IORING_SETUP_DEFER_TASKRUN)) {
    batch_wait_us_ = static_cast<uint32_t>(std::min<int64_t>(batch_wait, 1'000'000));
  }
  now_ = Clock::now();  // so timers scheduled by the handler factory are relative to now

  const auto& o = group_->options_;
  buf_count_ = o.recv_buffer_count;
  buf_size_ = o.recv_buffer_size;
  buf_ring_bytes_ = (buf_count_ * sizeof(io_uring_buf) + 4095) & ~size_t{4095};
  void* mem =
      mmap(nullptr, buf_ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) return absl::ResourceExhaustedError("mmap for buffer ring failed");
  buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(buf_ring_);
  reg.ring_entries = buf_count_;
  reg.bgid = kBufGroup;
  ret = io_uring_register_buf_ring(&ring_, &reg, 0);
  if (ret < 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("shard %d: io_uring_register_buf_ring: %s", id_, strerror(-ret)));
  }
  buffers_ = static_cast<uint8_t*>(std::aligned_alloc(4096, size_t{buf_count_} * buf_size_));
  if (buffers_ == nullptr) return absl::ResourceExhaustedError("receive buffers");
  io_uring_buf_ring_init(buf_ring_);
  const int mask = io_uring_buf_ring_mask(buf_count_);
  for (uint32_t i = 0; i < buf_count_; ++i) {
    io_uring_buf_ring_add(buf_ring_, buffers_ + size_t{i} * buf_size_, buf_size_,
                          static_cast<uint16_t>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(buf_ring_, static_cast<int>(buf_count_));

  event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event_fd_ < 0) return absl::InternalError(absl::StrFormat("eventfd: %s", strerror(errno)));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Submission helpers

io_uring_sqe* Shard::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
    SHARDMQ_CHECK(sqe != nullptr);
  }
  return sqe;
}

void Shard::ArmAccept(uint32_t li) {
  Listener& l = *listeners_[li];
  if (l.closed || l.armed || stopping_) return;
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_multishot_accept(sqe, l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, Ud(kOpAccept, li, 0));
  l.armed = true;
  ++inflight_ops_;
}

void Shard::ArmRecv(uint32_t index) {
  Conn& c = conns_[index];
  SHARDMQ_DCHECK(!c.recv_armed);
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_recv_multishot(sqe, c.fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufGroup;
  io_uring_sqe_set_data64(sqe, Ud(kOpRecv, index, c.generation));
  c.recv_armed = true;
  c.recv_cancel_pending = false;
  ++inflight_ops_;
}

void Shard::CancelRecv(uint32_t index) {
  Conn& c = conns_[index];
  if (!c.recv_armed || c.recv_cancel_pending) return;
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_cancel64(sqe, Ud(kOpRecv, index, c.generation), 0);
  io_uring_sqe_set_data64(sqe, Ud(kOpCancel, index, c.generation));
  c.recv_cancel_pending = true;
  ++inflight_ops_;
}

void Shard::ReturnBuffer(uint16_t bid) {
  io_uring_buf_ring_add(buf_ring_, buffers_ + size_t{bid} * buf_size_, buf_size_, bid,
                        io_uring_buf_ring_mask(buf_count_), 0);
  io_uring_buf_ring_advance(buf_ring_, 1);
}

// ---------------------------------------------------------------------------
// Connection bookkeeping

Shard::Conn* Shard::Lookup(ConnId id) {
  if (id.index >= conns_.size()) return nullptr;
  Conn& c = conns_[id.index];
  if (c.generation != id.generation || c.state != ConnState::kOpen) return nullptr;
  return &c;
}

const Shard::Conn* Shard::Lookup(ConnId id) const { return const_cast<Shard*>(this)->Lookup(id); }

bool Shard::ReadingWanted(const Conn& c) const {
  if (c.state == ConnState::kProxyHeader) return true;
  return c.state == ConnState::kOpen && !c.user_paused && c.bp_pauses == 0;
}

void Shard::MarkDirty(uint32_t index) {
  Conn& c = conns_[index];
  if (!c.dirty) {
    c.dirty = true;
    dirty_.push_back(index);
  }
}

ConnId Shard::AdoptConnection(int fd, const PeerInfo& peer, AddressLimiter::Key address_key,
                              absl::Span<const uint8_t> initial, std::unique_ptr<TlsSession> tls,
                              std::unique_ptr<WsSession> ws) {
  const uint32_t index =
      NewConn(fd, peer.listener_index, address_key, std::move(tls), std::move(ws));
  ArmRecv(index);
  return OpenConn(index, peer, initial);
}

uint32_t Shard::NewConn(int fd, int listener_index, AddressLimiter::Key address_key,
                        std::unique_ptr<TlsSession> tls, std::unique_ptr<WsSession> ws) {
  uint32_t index;
  if (free_head_ != UINT32_MAX) {
    index = free_head_;
    free_head_ = conns_[index].next_free;
  } else {
    index = static_cast<uint32_t>(conns_.size());
    conns_.emplace_back();
  }
  Conn& c = conns_[index];
  c.fd = fd;
  c.state = ConnState::kOpen;
  c.listener_index = static_cast<int8_t>(listener_index);
  c.address_key = address_key;
  c.tls = std::move(tls);
  c.ws = std::move(ws);
  return index;
}

ConnId Shard::OpenConn(uint32_t index, const PeerInfo& peer, absl::Span<const uint8_t> initial) {
  Conn& c = conns_[index];
  c.state = ConnState::kOpen;
  ++open_count_;
  const ConnId id{index, c.generation};
  current_conn_ = id;
  handler_->OnOpen(id, peer, initial);
  current_conn_ = ConnId{};
  // A handed-off session may hold ciphertext (or decrypted records, or
  // frames) that no receive completion will announce here.
  if ((conns_[index].tls != nullptr || conns_[index].ws != nullptr) &&
      conns_[index].state == ConnState::kOpen && conns_[index].generation == id.generation) {
    PumpTransforms(index);
  }
  return id;
}

void Shard::ReleaseOutput(Conn& c) {
  for (OutChunk& ch : c.out) {
    if (ch.owned != nullptr) std::free(ch.owned);
    if (ch.ref != nullptr) ch.ref->Unref();
  }
  c.out.clear();
  if (c.out.capacity() > 16) c.out.shrink_to_fit();
  c.head_offset = 0;
  c.queued = 0;
}

void Shard::ConsumeOutput(Conn& c, size_t n) {
  c.queued -= n;
  size_t done = 0;
  while (n > 0 && done < c.out.size()) {
    OutChunk& ch = c.out[done];
    const size_t avail = ch.len - c.head_offset;
    if (n >= avail) {
      n -= avail;
      if (ch.owned != nullptr) std::free(ch.owned);
      if (ch.ref != nullptr) ch.ref->Unref();
      c.head_offset = 0;
      ++done;
    } else {
      c.head_offset += static_cast<uint32_t>(n);
      n = 0;
    }
  }
  c.out.erase(c.out.begin(), c.out.begin() + static_cast<ptrdiff_t>(done));
  // An idle connection keeps no output storage (a CONNACK's one chunk would
  // otherwise stay for the connection's life); a busy one pays a small
  // allocation per drained send, next to the copy block it frees anyway.
  if (c.out.empty()) std::vector<OutChunk>().swap(c.out);
}

void Shard::StartClosing(uint32_t index, CloseReason reason, bool flush) {
  Conn& c = conns_[index];
  SHARDMQ_DCHECK(c.state == ConnState::kOpen);
  c.state = ConnState::kClosing;
  c.reason = reason;
  c.abort = !flush;
  --open_count_;
  deferred_closes_.push_back({ConnId{index, c.generation}, reason, c.user_data});
  if (!flush && (c.send_inflight || c.recv_armed)) {
    // Cancel everything on the fd (the receive and an in-flight send).
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_cancel_fd(sqe, c.fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, Ud(kOpCancel, index, c.generation));
    ++inflight_ops_;
    c.recv_cancel_pending = true;
  } else {
    CancelRecv(index);
  }
  if (flush) MarkDirty(index);
  MaybeFinalize(index);
}

void Shard::MaybeFinalize(uint32_t index) {
  Conn& c = conns_[index];
  if (c.state == ConnState::kOpen || c.state == ConnState::kFree) return;
  if (c.recv_armed || c.send_inflight) return;
  if (!c.abort && !c.out.empty()) return;  // still flushing
  ReleaseOutput(c);
  if (c.state == ConnState::kHandingOff && !c.abort) {
    std::unique_ptr<HandoffPayload> h = std::move(c.handoff);
    h->fd = c.fd;
    h->listener_index = c.listener_index;
    h->address_key = c.address_key;
    h->tls = std::move(c.tls);
    h->ws = std::move(c.ws);
    if (c.proxy != nullptr) h->peer = c.proxy->peer;
    const int target = h->target;
    ShardCounters::Inc(counters_.handoffs_out);
    PostImpl(target, kMailHandoff, 0, h.release(), 0, UINT64_MAX);
  } else {
    ::close(c.fd);
    group_->ConnectionClosed(c.listener_index, c.address_key, NowNs());
    ShardCounters::Inc(counters_.closed);
    if (stopping_) {
      if (c.abort) {
        ++report_.connections_aborted;
      } else {
        ++report_.connections_flushed;
      }
    }
  }
  c.handoff.reset();
  c.tls.reset();
  c.ws.reset();
  if (c.proxy != nullptr) {
    CancelTimer(c.proxy->timer);
    c.proxy.reset();
  }
  c.fd = -1;
  c.state = ConnState::kFree;
  c.generation = (c.generation + 1) & kGenMask;
  if (c.generation == 0) c.generation = 1;
  c.user_data = nullptr;
  c.user_paused = false;
  c.bp_pauses = 0;
  c.abort = false;
  c.recv_cancel_pending = false;
  c.next_free = free_head_;
  free_head_ = index;
}

// ---------------------------------------------------------------------------
// Public API (shard thread)

bool Shard::Send(ConnId id, absl::Span<const uint8_t> bytes) {
  Conn* c = Lookup(id);
  if (c == nullptr) return false;
  if (bytes.empty()) return true;
  if (c->ws != nullptr) {
    // One binary frame per chunk; before the handshake the session holds it.
    if (!c->ws->Write(bytes)) return false;
    return QueueWsOutput(id.index);
  }
  return QueueOutput(id.index, bytes);
}

bool Shard::QueueOutput(uint32_t index, absl::Span<const uint8_t> bytes) {
  Conn* c = &conns_[index];
  if (c->tls != nullptr) {
    // Slices keep the memory write BIO (which never shrinks) at about one
    // record per connection, however large the message.
    for (size_t pos = 0; pos < bytes.size(); pos += kTlsWriteSlice) {
      if (!c->tls->Write(bytes.subspan(pos, kTlsWriteSlice))) {
        SHARDMQ_LOG(kDebug, "shard %d: TLS write failed: %s", id_, c->tls->error().c_str());
        ShardCounters::Inc(counters_.tls_failures);
        if (c->state == ConnState::kOpen) {
          StartClosing(index, CloseReason::kError, /*flush=*/false);
        }
        return false;
      }
      QueueTlsOutput(index);
    }
    return true;
  }
  return QueueCopy(index, bytes);
}

bool Shard::QueueWsOutput(uint32_t index) {
  Conn& c = conns_[index];
  if (c.ws == nullptr || !c.ws->HasOutput()) return true;
  bool ok = true;
  c.ws->DrainOutput([&](absl::Span<const uint8_t> chunk) { ok = ok && QueueOutput(index, chunk); });
  return ok;
}

bool Shard::QueueCopy(uint32_t index, absl::Span<const uint8_t> bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t n = std::min<size_t>(bytes.size() - pos, 1u << 30);
    std::memcpy(AppendCopy(index, n), bytes.data() + pos, n);
    pos += n;
  }
  return true;
}

uint8_t* Shard::AppendCopy(uint32_t index, size_t size) {
  Conn* c = &conns_[index];
  MarkDirty(index);
  if (!c->out.empty()) {
    OutChunk& last = c->out.back();
    if (last.owned != nullptr && last.cap - last.len >= size) {
      // Appending past `len` is safe even while a send is in flight: the
      // kernel only reads the iovec ranges built from the old length.
      uint8_t* at = last.owned + last.len;
      last.len += static_cast<uint32_t>(size);
      c->queued += size;
      return at;
    }
  }
  // Grow blocks with the backlog: a connection that already has output
  // queued is likely to get more before its next send completes.
  const size_t cap =
      std::max({size, kCopyBlock, std::min(std::bit_ceil(c->queued + 1), kMaxCopyBlock)});
  auto* mem = static_cast<uint8_t*>(std::malloc(cap));
  SHARDMQ_CHECK(mem != nullptr);
  c->out.push_back(
      OutChunk{mem, static_cast<uint32_t>(size), static_cast<uint32_t>(cap), mem, nullptr});
  c->queued += size;
  return mem;
}

uint8_t* Shard::SendInPlace(ConnId id, size_t size) {
  Conn* c = Lookup(id);
  if (c == nullptr || c->tls != nullptr || c->ws != nullptr) return nullptr;
  SHARDMQ_CHECK(size < (size_t{1} << 30));
  return AppendCopy(id.index, size);
}

bool Shard::SendShared(ConnId id, absl::Span<const uint8_t> bytes, const RefCounted* owner) {
  Conn* c = Lookup(id);
  if (c == nullptr) return false;
  if (bytes.empty()) return true;
  // Ciphertext and frames differ per connection, so sharing is impossible:
  // encrypt or frame now (which copies) and take no reference.
  if (c->tls != nullptr || c->ws != nullptr) return Send(id, bytes);
  SHARDMQ_CHECK(bytes.size() < (size_t{1} << 32));
  if (owner != nullptr) owner->Ref();
  c->out.push_back(OutChunk{bytes.data(), static_cast<uint32_t>(bytes.size()), 0, nullptr, owner});
  c->queued += bytes.size();
  MarkDirty(id.index);
  return true;
}

size_t Shard::QueuedBytes(ConnId id) const {
  if (id.index >= conns_.size()) return 0;
  const Conn& c = conns_[id.index];
  return c.generation == id.generation && c.state != ConnState::kFree ? c.queued : 0;
}

bool Shard::Close(ConnId id) {
  Conn* c = Lookup(id);
  if (c == nullptr) return false;
  if (c->ws != nullptr) {
    // A close frame (1000) first: browsers report anything else as abnormal.
    c->ws->Close();
    QueueWsOutput(id.index);
  }
  if (c->tls != nullptr && c->state == ConnState::kOpen) {
    // close_notify tells the client the stream ended on purpose.
    c->tls->Shutdown();
    QueueTlsOutput(id.index);
  }
  if (c->state == ConnState::kOpen) {
    StartClosing(id.index, CloseReason::kClosedByUs, /*flush=*/true);
  }
  return true;
}

bool Shard::Abort(ConnId id) {
  if (Lookup(id) == nullptr) return false;
  StartClosing(id.index, CloseReason::kAborted, /*flush=*/false);
  return true;
}

bool Shard::HandOff(ConnId id, int target_shard, absl::Span<const uint8_t> already_read) {
  SHARDMQ_CHECK(target_shard >= 0 && target_shard < shard_count_ && target_shard != id_);
  Conn* c = Lookup(id);
  if (c == nullptr) return false;
  c->state = ConnState::kHandingOff;
  c->reason = CloseReason::kHandedOff;
  c->handoff = std::make_unique<HandoffPayload>();
  c->handoff->target = target_shard;
  c->handoff->bytes.assign(already_read.begin(), already_read.end());
  --open_count_;
  deferred_closes_.push_back({id, CloseReason::kHandedOff, c->user_data});
  CancelRecv(id.index);
  MarkDirty(id.index);
  MaybeFinalize(id.index);
  return true;
}

bool Shard::PauseReading(ConnId id) {
  Conn* c = Lookup(id);
  if (c == nullptr) return false;
  c->user_paused = true;
  CancelRecv(id.index);
  return true;
}

bool Shard::ResumeReading(ConnId id) {
  Conn* c = Lookup(id);
  if (c == nullptr) return false;
  c->user_paused = false;
  if (ReadingWanted(*c) && !c->recv_armed) ArmRecv(id.index);
  // If a cancel is still in flight, the final receive CQE re-arms.
  return true;
}

bool Shard::SetUserData(ConnId id, void* data) {
  Conn* c = Lookup(id);
  if (c == nullptr) return false;
  c->user_data = data;
  return true;
}

void* Shard::UserData(ConnId id) const {
  const Conn* c = Lookup(id);
  return c == nullptr ? nullptr : c->user_data;
}

bool Shard::IsOpen(ConnId id) const { return Lookup(id) != nullptr; }

bool Shard::IsTls(ConnId id) const {
  const Conn* c = Lookup(id);
  return c != nullptr && c->tls != nullptr;
}

std::string Shard::TlsPeerIdentity(ConnId id) const {
  const Conn* c = Lookup(id);
  return c == nullptr || c->tls == nullptr ? std::string() : c->tls->peer_identity();
}

bool Shard::IsWebSocket(ConnId id) const {
  const Conn* c = Lookup(id);
  return c != nullptr && c->ws != nullptr;
}

void Shard::QueueTlsOutput(uint32_t index) {
  Conn& c = conns_[index];
  if (c.tls == nullptr || !c.tls->HasCiphertext()) return;
  c.tls->DrainCiphertext([&](absl::Span<const uint8_t> chunk) { QueueCopy(index, chunk); });
}

void Shard::PumpTransforms(uint32_t index) {
  if (tls_plain_.size() < buf_size_) tls_plain_.resize(std::max<size_t>(buf_size_, 16 * 1024));
  const uint32_t generation = conns_[index].generation;
  const auto tls_failed = [&](Conn& c) {
    SHARDMQ_LOG(kDebug, "shard %d: TLS connection refused/failed: %s", id_, c.tls->error().c_str());
    ShardCounters::Inc(counters_.tls_failures);
    // Flush so the alert reaches the client; reading stops.
    StartClosing(index, CloseReason::kError, /*flush=*/true);
  };
  for (;;) {
    Conn& c = conns_[index];
    if (c.generation != generation || c.state != ConnState::kOpen) return;
    int n = 0;
    if (c.ws != nullptr) {
      // Frames already received come first; TLS is asked for more only
      // when they are used up, so the session holds one record at most.
      n = c.ws->Read(absl::MakeSpan(tls_plain_));
      if (!QueueWsOutput(index)) return;  // the 101/400 answer, pongs, close frames
      if (n < 0) {
        CloseReason reason = CloseReason::kPeerClosed;
        if (!c.ws->closed_by_peer()) {
          SHARDMQ_LOG(kDebug, "shard %d: WebSocket connection refused/failed: %s", id_,
                      c.ws->error().c_str());
          ShardCounters::Inc(counters_.ws_failures);
          reason = CloseReason::kError;
        }
        if (c.tls != nullptr) {
          c.tls->Shutdown();
          QueueTlsOutput(index);
        }
        // Flush so the close frame (or the HTTP 400) reaches the client.
        StartClosing(index, reason, /*flush=*/true);
        return;
      }
      if (n == 0) {
        if (c.tls == nullptr) return;
        const int m = c.tls->Read(absl::MakeSpan(tls_plain_));
        QueueTlsOutput(index);  // handshake records, alerts, session tickets
        if (m == 0) return;
        if (m < 0) {
          tls_failed(c);
          return;
        }
        c.ws->Feed(absl::Span<const uint8_t>(tls_plain_.data(), static_cast<size_t>(m)));
        continue;
      }
    } else {
      if (c.tls == nullptr) return;
      n = c.tls->Read(absl::MakeSpan(tls_plain_));
      QueueTlsOutput(index);  // handshake records, alerts, session tickets
      if (n == 0) return;
      if (n < 0) {
        tls_failed(c);
        return;
      }
    }
    const ConnId id{index, generation};
    current_conn_ = id;
    // May close, pause or hand off: the loop re-checks the state, and a
    // handed-off session keeps what it has not decoded yet.
    handler_->OnData(id, absl::Span<const uint8_t>(tls_plain_.data(), static_cast<size_t>(n)));
    current_conn_ = ConnId{};
  }
}

bool Shard::PostImpl(int target, uint32_t kind, uint32_t aux, void* ptr, uint64_t arg,
                     uint64_t limit) {
  if (kind != kMailReturnBatch) wake_wanted_[target] = true;
  std::deque<MailItem>& of = overflow_[target];
  // The item is written field by field from registers: copying a MailItem
  // built on the stack (by the caller, or by the compiler here) reloads it
  // with one 16-byte load that stalls on store forwarding (perf's hottest
  // instruction of a post when messages cross shards).
  const auto fill = [&](MailItem& slot) {
    slot.kind = kind;
    slot.aux = aux;
    slot.ptr = ptr;
    slot.arg = arg;
  };
  if (of.empty() && outbound_[target]->TryEmplace(fill, limit)) {
    ShardCounters::Inc(counters_.mail_pushed);
    return true;
  }
  fill(of.emplace_back());
  // A bulk item keeps its weight while it waits (MoveOverflowItem).
  if (limit != UINT64_MAX) of.back().kind |= kBulkBit;
  has_overflow_.store(true, std::memory_order_relaxed);
  ShardCounters::Inc(counters_.mail_full);
  // Runtime mail (return batches, hand-offs) never pauses a reader.
  if (kind < kMailKindReservedBase && current_conn_.valid()) {
    Conn* c = Lookup(current_conn_);
    auto& paused = paused_by_[target];
    if (c != nullptr && std::find(paused.begin(), paused.end(), current_conn_) == paused.end()) {
      paused.push_back(current_conn_);
      ++c->bp_pauses;
      CancelRecv(current_conn_.index);
      ShardCounters::Inc(counters_.reads_paused);
    }
  }
  return false;
}

uint64_t Shard::BulkLimit(int target) const {
  const uint64_t items = std::min<uint64_t>(outbound_[target]->capacity(), kBulkInFlight);
  return std::max<uint64_t>(1, items / kBulkItemWeight);
}

bool Shard::MoveOverflowItem(int target) {
  std::deque<MailItem>& of = overflow_[target];
  MailItem item = of.front();
  uint64_t limit = UINT64_MAX;
  if (IsBulk(item)) {
    item.kind &= ~kBulkBit;
    limit = BulkLimit(target);
  }
  if (!outbound_[target]->TryEmplace([&](MailItem& slot) { slot = item; }, limit)) return false;
  of.pop_front();
  return true;
}

TimerId Shard::ScheduleTimer(Clock::duration delay, absl::AnyInvocable<void()> callback) {
  return timers_.Schedule(now_ + delay, std::move(callback));
}

bool Shard::CancelTimer(TimerId id) { return timers_.Cancel(id); }

// ---------------------------------------------------------------------------
// Completions

void Shard::ProcessCompletions() {
  io_uring_cqe* cqes[256];
  for (int round = 0; round < 16; ++round) {
    const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 256);
    if (n == 0) break;
    for (unsigned i = 0; i < n; ++i) HandleCqe(cqes[i]);
    io_uring_cq_advance(&ring_, n);
  }
}

void Shard::HandleCqe(const io_uring_cqe* cqe) {
  const uint64_t ud = cqe->user_data;
  const int res = cqe->res;
  const uint32_t flags = cqe->flags;
  switch (UdOp(ud)) {
    case kOpAccept:
      OnAcceptCqe(UdIndex(ud), res, flags);
      return;
    case kOpRecv: {
      const uint32_t index = UdIndex(ud);
      if (index >= conns_.size() || (conns_[index].generation & kGenMask) != UdGen(ud) ||
          conns_[index].state == ConnState::kFree) {
        // Cannot happen (slots are reused only after their last CQE), but
        // never leak a buffer.
        SHARDMQ_DCHECK(false);
        if (flags & IORING_CQE_F_BUFFER) ReturnBuffer(static_cast<uint16_t>(flags >> 16));
        return;
      }
      OnRecvCqe(index, res, flags);
      return;
    }
    case kOpSend:
      OnSendCqe(UdIndex(ud), res);
      return;
    case kOpCancel:
      --inflight_ops_;
      return;
    case kOpEvent:
      --inflight_ops_;
      if (!final_drain_) {
        io_uring_sqe* sqe = GetSqe();
        io_uring_prep_read(sqe, event_fd_, &event_buf_, sizeof(event_buf_), 0);
        io_uring_sqe_set_data64(sqe, Ud(kOpEvent, 0, 0));
        ++inflight_ops_;
      }
      return;
    case kOpMsgRing:
      if (res < 0) SHARDMQ_LOG(kWarning, "shard %d: MSG_RING wake failed: %s", id_, strerror(-res));
      return;
    case kOpWake:
      return;  // its only job was to end io_uring_enter
    case kOpFile:
      --inflight_ops_;
      OnFileCqe(UdIndex(ud), res);
      return;
  }
  SHARDMQ_LOG(kError, "shard %d: unknown completion %#llx", id_,
              static_cast<unsigned long long>(ud));
}

uint32_t Shard::TakeFileSlot(FileDone done) {
  uint32_t slot;
  if (!free_file_slots_.empty()) {
    slot = free_file_slots_.back();
    free_file_slots_.pop_back();
    file_ops_[slot] = std::move(done);
  } else {
    slot = static_cast<uint32_t>(file_ops_.size());
    file_ops_.push_back(std::move(done));
  }
  ++file_ops_pending_;
  ++inflight_ops_;
  return slot;
}

void Shard::WriteFile(int fd, uint64_t offset, absl::Span<const uint8_t> bytes, FileDone done) {
  const uint32_t slot = TakeFileSlot(std::move(done));
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_write(sqe, fd, bytes.data(), static_cast<unsigned>(bytes.size()), offset);
  io_uring_sqe_set_data64(sqe, Ud(kOpFile, slot, 0));
}

void Shard::ReadFile(int fd, uint64_t offset, absl::Span<uint8_t> into, FileDone done) {
  const uint32_t slot = TakeFileSlot(std::move(done));
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_read(sqe, fd, into.data(), static_cast<unsigned>(into.size()), offset);
  io_uring_sqe_set_data64(sqe, Ud(kOpFile, slot, 0));
}

void Shard::SyncFile(int fd, FileDone done) {
  const uint32_t slot = TakeFileSlot(std::move(done));
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
  io_uring_sqe_set_data64(sqe, Ud(kOpFile, slot, 0));
}

void Shard::UnlinkFile(int dir_fd, std::string path, FileDone done) {
  // The kernel reads the name when the SQE is submitted, later in this loop
  // turn: keep it on the heap (a moved std::string may move its bytes) until
  // the completion.
  auto name = std::make_unique<std::string>(std::move(path));
  const char* name_bytes = name->c_str();
  const uint32_t slot = TakeFileSlot(
      [name = std::move(name), done = std::move(done)](int res) mutable { done(res); });
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_unlinkat(sqe, dir_fd, name_bytes, 0);
  io_uring_sqe_set_data64(sqe, Ud(kOpFile, slot, 0));
}

void Shard::OnFileCqe(uint32_t slot, int res) {
  FileDone done = std::move(file_ops_[slot]);
  file_ops_[slot] = nullptr;
  free_file_slots_.push_back(slot);
  --file_ops_pending_;
  done(res);
}

bool Shard::AdmitCount(int listener_index) {
  ShardGroup& group = *group_;
  if (group.open_connections_.fetch_add(1, std::memory_order_relaxed) >= group.max_connections()) {
    group.open_connections_.fetch_sub(1, std::memory_order_relaxed);
    ShardCounters::Inc(counters_.rejected_max_connections);
    SHARDMQ_LOG_THROTTLED(kWarning,
                          "refused a connection: %d open, the most allowed "
                          "(--max-connections)",
                          group.max_connections());
    return false;
  }
  if (!group.ListenerBounded(listener_index)) return true;
  // Like the group's bound: count first, then undo, so that shards
  // accepting at once can never both take the last place.
  const uint32_t bound = group.options_.listeners[listener_index].max_connections;
  if (group.listener_open_[listener_index].fetch_add(1, std::memory_order_relaxed) >= bound) {
    group.listener_open_[listener_index].fetch_sub(1, std::memory_order_relaxed);
    group.open_connections_.fetch_sub(1, std::memory_order_relaxed);
    ShardCounters::Inc(counters_.rejected_listener_max_connections);
    SHARDMQ_LOG_THROTTLED(kWarning,
                          "refused a connection on listener %s: %d open there, the most it "
                          "allows (max_connections)",
                          group.bound_addresses_[listener_index], bound);
    return false;
  }
  return true;
}

bool Shard::AdmitAddress(const PeerInfo& peer, AddressLimiter::Key* key) {
  AddressLimiter& limiter = *group_->address_limiter_;
  *key = limiter.KeyOf(peer.addr, peer.addr_len);
  if (*key == AddressLimiter::kNoKey) return true;
  switch (limiter.Admit(*key, NowNs())) {
    case AddressLimiter::Verdict::kAdmit:
      return true;
    case AddressLimiter::Verdict::kTooMany:
      ShardCounters::Inc(counters_.rejected_per_address);
      SHARDMQ_LOG_THROTTLED(kWarning,
                            "refused a connection from %s: it has %d open, the most one address "
                            "may (--max-connections-per-address)",
                            peer.ToString(), group_->address_limits().max_per_address);
      return false;
    case AddressLimiter::Verdict::kTooFast:
      ShardCounters::Inc(counters_.rejected_connect_rate);
      SHARDMQ_LOG_THROTTLED(kWarning,
                            "refused a connection from %s: more than %d new connections a "
                            "second from it (--max-connect-rate-per-address)",
                            peer.ToString(), group_->address_limits().connects_per_second);
      return false;
  }
  return false;
}

void Shard::AcceptAdmitted(int fd, const PeerInfo& peer, AddressLimiter::Key key) {
  const ShardGroup::ListenAddress& listener = group_->options_.listeners[peer.listener_index];
  // Unix sockets have no TCP_NODELAY: they would only fail the syscall, and
  // spoil the check below for the TCP listeners.
  if (group_->options_.tcp_nodelay && !nodelay_inherited_ && listener.unix_path.empty()) {
    // The listener has TCP_NODELAY; if the first accepted socket shows
    // it inherited it, skip this syscall for every later connection.
    int on = 0;
    socklen_t len = sizeof(on);
    if (!nodelay_checked_ && getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 && on != 0) {
      nodelay_inherited_ = true;
    } else {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    nodelay_checked_ = true;
  }
  ShardCounters::Inc(counters_.accepted);
  std::unique_ptr<TlsSession> tls;
  std::unique_ptr<WsSession> ws;
  if (listener.tls != nullptr) tls = TlsSession::Create(listener.tls);
  if (listener.ws != nullptr) ws = WsSession::Create(listener.ws);
  if ((listener.tls != nullptr && tls == nullptr) || (listener.ws != nullptr && ws == nullptr)) {
    ShardCounters::Inc(counters_.accept_errors);
    ::close(fd);
    group_->ConnectionClosed(peer.listener_index, key, NowNs());
    return;
  }
  if (listener.proxy_protocol) {
    AwaitProxyHeader(fd, peer, std::move(tls), std::move(ws));
    return;
  }
  AdoptConnection(fd, peer, key, {}, std::move(tls), std::move(ws));
}

void Shard::AwaitProxyHeader(int fd, const PeerInfo& peer, std::unique_ptr<TlsSession> tls,
                             std::unique_ptr<WsSession> ws) {
  const uint32_t index =
      NewConn(fd, peer.listener_index, AddressLimiter::kNoKey, std::move(tls), std::move(ws));
  Conn& c = conns_[index];
  c.state = ConnState::kProxyHeader;
  c.proxy = std::make_unique<ProxyState>();
  c.proxy->peer = peer;
  const ConnId id{index, c.generation};
  c.proxy->timer = ScheduleTimer(group_->options_.proxy_header_timeout, [this, id] {
    if (conns_[id.index].generation != id.generation ||
        conns_[id.index].state != ConnState::kProxyHeader) {
      return;
    }
    conns_[id.index].proxy->timer = TimerId{};
    RefuseProxyHeader(id.index, "no complete PROXY header in time");
  });
  ArmRecv(index);
}

void Shard::OnProxyBytes(uint32_t index, absl::Span<const uint8_t> bytes) {
  ProxyState& p = *conns_[index].proxy;
  // Most headers come whole in the first read: parse it in place, and copy
  // only what has to wait for more.
  absl::Span<const uint8_t> input = bytes;
  if (!p.header.empty()) {
    p.header.insert(p.header.end(), bytes.begin(), bytes.end());
    input = p.header;
  }
  const net::ProxyHeaderResult r = net::ParseProxyHeader(input);
  if (r.status == net::ProxyHeaderStatus::kNeedMore) {
    if (p.header.empty()) p.header.assign(bytes.begin(), bytes.end());
    return;
  }
  if (r.status == net::ProxyHeaderStatus::kError) {
    RefuseProxyHeader(index, r.error);
    return;
  }
  if (r.has_source) {
    p.peer.addr = r.source;
    p.peer.addr_len = r.source_length;
  }
  // The slot's buffer goes if the handler closes the connection in OnOpen;
  // the bytes after the header must outlive that.
  const std::vector<uint8_t> buffered = std::move(p.header);
  p.header = {};
  if (!buffered.empty()) input = buffered;
  OpenProxied(index, input.subspan(r.consumed));
}

void Shard::OpenProxied(uint32_t index, absl::Span<const uint8_t> after_header) {
  Conn& c = conns_[index];
  CancelTimer(c.proxy->timer);
  c.proxy->timer = TimerId{};
  const PeerInfo peer = c.proxy->peer;
  // The per-address limits are about clients, so they apply to the address
  // in the header, not to the balancer's.
  AddressLimiter::Key key = AddressLimiter::kNoKey;
  if (!AdmitAddress(peer, &key)) {
    DropUnopened(index);
    return;
  }
  c.address_key = key;
  const bool plain = c.tls == nullptr && c.ws == nullptr;
  if (c.tls != nullptr) {
    c.tls->Feed(after_header);  // a ClientHello; OpenConn pumps it
  } else if (c.ws != nullptr) {
    c.ws->Feed(after_header);  // an HTTP Upgrade request
  }
  // initial_bytes stays empty: to the handler this is a fresh accept (accept
  // hooks run), and the client's first bytes arrive as data.
  const ConnId id = OpenConn(index, peer, {});
  if (plain && !after_header.empty() && IsOpen(id)) {
    current_conn_ = id;
    handler_->OnData(id, after_header);
    current_conn_ = ConnId{};
  }
}

void Shard::RefuseProxyHeader(uint32_t index, std::string_view why) {
  ShardCounters::Inc(counters_.rejected_proxy_header);
  SHARDMQ_LOG_THROTTLED(kWarning,
                        "refused a connection from %s on a PROXY protocol listener: %s "
                        "(is it behind a balancer that sends the header?)",
                        conns_[index].proxy->peer.ToString(), why);
  DropUnopened(index);
}

void Shard::DropUnopened(uint32_t index) {
  Conn& c = conns_[index];
  SHARDMQ_DCHECK(c.state == ConnState::kProxyHeader);
  c.state = ConnState::kClosing;
  c.abort = true;
  if (c.recv_armed) {
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_cancel_fd(sqe, c.fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, Ud(kOpCancel, index, c.generation));
    ++inflight_ops_;
    c.recv_cancel_pending = true;
  }
  MaybeFinalize(index);
}

void Shard::OnAcceptCqe(uint32_t li, int res, uint32_t flags) {
  Listener& l = *listeners_[li];
  if (!(flags & IORING_CQE_F_MORE)) {
    l.armed = false;
    --inflight_ops_;
  }
  if (res >= 0) {
    const int fd = res;
    if (stopping_ || final_drain_ || !AdmitCount(l.index)) {
      ::close(fd);
    } else {
      PeerInfo peer = PeerOf(fd, l.index);
      AddressLimiter::Key key = AddressLimiter::kNoKey;
      // Behind a balancer the socket's peer is the balancer: the limits wait
      // for the client's address in the PROXY header (OpenProxied).
      if (group_->options_.listeners[l.index].proxy_protocol || AdmitAddress(peer, &key)) {
        AcceptAdmitted(fd, peer, key);
      } else {
        group_->ConnectionClosed(l.index, AddressLimiter::kNoKey, NowNs());
        ::close(fd);
      }
    }
  } else if (res != -ECANCELED) {
    ShardCounters::Inc(counters_.accept_errors);
  }
  if (!l.armed && !l.closed && !stopping_ && !final_drain_) {
    if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
      // Out of descriptors: retry a little later instead of spinning.
      ScheduleTimer(std::chrono::milliseconds(50), [this, li] { ArmAccept(li); });
    } else {
      ArmAccept(li);
    }
  }
}

void Shard::OnRecvCqe(uint32_t index, int res, uint32_t flags) {
  const bool more = (flags & IORING_CQE_F_MORE) != 0;
  if (!more) {
    conns_[index].recv_armed = false;
    conns_[index].recv_cancel_pending = false;
    --inflight_ops_;
  }
  if (flags & IORING_CQE_F_BUFFER) {
    const uint16_t bid = static_cast<uint16_t>(flags >> 16);
    if (res > 0) {
      ShardCounters::Inc(counters_.bytes_received, static_cast<uint64_t>(res));
      const absl::Span<const uint8_t> data(buffers_ + size_t{bid} * buf_size_,
                                           static_cast<size_t>(res));
      Conn& c = conns_[index];
      if (c.state == ConnState::kProxyHeader && !final_drain_) {
        OnProxyBytes(index, data);  // may open the connection and deliver data
      } else if ((c.tls != nullptr || c.ws != nullptr) &&
                 (c.state == ConnState::kOpen || (c.state == ConnState::kHandingOff && !c.abort))) {
        // Ciphertext or frames: decoded here, or by the target shard after a
        // hand-off.
        if (c.tls != nullptr) {
          c.tls->Feed(data);
        } else {
          c.ws->Feed(data);
        }
        if (c.state == ConnState::kOpen && !final_drain_) PumpTransforms(index);
      } else if (c.state == ConnState::kOpen && !final_drain_) {
        const ConnId id{index, c.generation};
        current_conn_ = id;
        handler_->OnData(id, data);  // may close, pause, hand off, post ...
        current_conn_ = ConnId{};
      } else if (c.state == ConnState::kHandingOff && !c.abort) {
        c.handoff->bytes.insert(c.handoff->bytes.end(), data.begin(), data.end());
      }
      // kClosing: discarded.
    }
    ReturnBuffer(bid);  // the handler has copied what it keeps
  }
  Conn& c = conns_[index];
  if (c.state == ConnState::kProxyHeader &&
      (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED))) {
    DropUnopened(index);  // gone before its header was in (a balancer's TCP check)
  } else if (res == 0) {
    if (c.state == ConnState::kOpen) StartClosing(index, CloseReason::kPeerClosed, true);
    // kHandingOff: the target will see the EOF itself.
  } else if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
    if (c.state == ConnState::kOpen) StartClosing(index, CloseReason::kError, false);
  } else if (res == -ENOBUFS) {
    ShardCounters::Inc(counters_.recv_enobufs);
  }
  Conn& c2 = conns_[index];
  if (!more) {
    if (ReadingWanted(c2) && !c2.recv_armed && !c2.in_rearm) {
      // Multishot ended (ENOBUFS, cancel raced with resume, or the kernel
      // chose to stop): re-arm at the end of this turn, after buffers return.
      c2.in_rearm = true;
      rearm_.push_back(index);
    }
    MaybeFinalize(index);
  }
}

void Shard::OnSendCqe(uint32_t index, int res) {
  Conn& c = conns_[index];
  SHARDMQ_DCHECK(c.send_inflight);
  c.send_inflight = false;
  --inflight_ops_;
  send_ctx_free_.emplace_back(c.send_ctx);
  c.send_ctx = nullptr;
  if (res < 0) {
    if (c.state == ConnState::kOpen) {
      StartClosing(index, CloseReason::kError, false);
    } else {
      c.abort = true;
    }
  } else {
    ShardCounters::Inc(counters_.bytes_sent, static_cast<uint64_t>(res));
    ConsumeOutput(c, static_cast<size_t>(res));
    if (!c.out.empty()) {
      ShardCounters::Inc(counters_.partial_sends);
      MarkDirty(index);
    }
  }
  MaybeFinalize(index);
}

void Shard::FlushSends() {
  if (dirty_.empty()) return;
  std::vector<uint32_t> dirty;
  dirty.swap(dirty_);
  for (uint32_t index : dirty) {
    Conn& c = conns_[index];
    c.dirty = false;
    if (c.state == ConnState::kFree || c.send_inflight || c.abort) continue;
    if (c.out.empty()) {
      MaybeFinalize(index);
      continue;
    }
    SendCtx* ctx;
    if (!send_ctx_free_.empty()) {
      ctx = send_ctx_free_.back().release();
      send_ctx_free_.pop_back();
    } else {
      ctx = new SendCtx;
    }
    size_t n = 0;
    for (size_t i = 0; i < c.out.size() && n < kMaxIov; ++i, ++n) {
      const OutChunk& ch = c.out[i];
      const uint32_t skip = i == 0 ? c.head_offset : 0;
      ctx->iov[n].iov_base = const_cast<uint8_t*>(ch.data + skip);
      ctx->iov[n].iov_len = ch.len - skip;
    }
    ctx->msg = msghdr{};
    ctx->msg.msg_iov = ctx->iov;
    ctx->msg.msg_iovlen = n;
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_sendmsg(sqe, c.fd, &ctx->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, Ud(kOpSend, index, c.generation));
    c.send_ctx = ctx;
    c.send_inflight = true;
    ++inflight_ops_;
    ShardCounters::Inc(counters_.sends);
  }
  if (dirty_.empty()) {  // keep the capacity
    dirty.clear();
    dirty.swap(dirty_);
  }
}

void Shard::RearmReceives() {
  for (uint32_t index : rearm_) {
    Conn& c = conns_[index];
    c.in_rearm = false;
    if (ReadingWanted(c) && !c.recv_armed) {
      ArmRecv(index);
      ShardCounters::Inc(counters_.recv_rearms);
    }
  }
  rearm_.clear();
}

void Shard::DispatchDeferredCloses() {
  // OnClosed may close more connections; loop until quiet.
  while (!deferred_closes_.empty()) {
    std::vector<DeferredClose> batch;
    batch.swap(deferred_closes_);
    for (const DeferredClose& close : batch) {
      handler_->OnClosed(close.id, close.reason, close.user_data);
    }
  }
}

// ---------------------------------------------------------------------------
// Mail

void Shard::DrainMailboxes() {
  for (int s = 0; s < shard_count_; ++s) {
    if (s == id_) continue;
    const size_t n = inbound_[s]->Drain(
        kMailBatch,
        [&](const MailItem& m) {
          if (m.kind >= kMailKindReservedBase) {
            HandleInternalMail(s, m);
          } else {
            handler_->OnMail(s, m);
          }
        },
        // The object an item points to (e.g. a Message) was written on the
        // sender's core: start fetching it a few items early. Prefetching
        // never faults, whatever `ptr` is.
        [](const MailItem& m) { __builtin_prefetch(m.ptr); });
    if (n > 0) {
      ShardCounters::Inc(counters_.mail_received, n);
      // The source is waiting for room: tell it (only if it sleeps).
      if (group_->shards_[s]->has_overflow_.load(std::memory_order_relaxed)) WakeTarget(s);
    }
  }
}

void Shard::HandleInternalMail(int /*from*/, const MailItem& item) {
  if (item.kind == kMailReturnBatch) {
    auto* batch = static_cast<ReturnBatch*>(item.ptr);
    ShardCounters::Inc(counters_.refs_freed_for_others, batch->count);
    FreeReturnBatch(batch);
    return;
  }
  if (item.kind == kMailHandoff) {
    std::unique_ptr<HandoffPayload> h(static_cast<HandoffPayload*>(item.ptr));
    if (stopping_) {
      ::close(h->fd);
      group_->ConnectionClosed(h->listener_index, h->address_key, NowNs());
      ++report_.handoffs_closed;
      return;
    }
    ShardCounters::Inc(counters_.handoffs_in);
    if (!h->peer.has_value()) {
      AdoptConnection(h->fd, PeerOf(h->fd, h->listener_index), h->address_key, h->bytes,
                      std::move(h->tls), std::move(h->ws));
      return;
    }
    // The PROXY header's address travels with the connection.
    const uint32_t index =
        NewConn(h->fd, h->listener_index, h->address_key, std::move(h->tls), std::move(h->ws));
    conns_[index].proxy = std::make_unique<ProxyState>();
    conns_[index].proxy->peer = *h->peer;
    ArmRecv(index);
    OpenConn(index, *h->peer, h->bytes);
    return;
  }
  SHARDMQ_LOG(kError, "shard %d: unknown internal mail kind %#x", id_, item.kind);
}

void Shard::FlushOutboundMail() {
  handler_->OnMailFlush();
  PostReturnBatches();
  bool overflow_left = false;
  for (int t = 0; t < shard_count_; ++t) {
    if (t == id_) continue;
    SpscRing<MailItem>& ring = *outbound_[t];
    std::deque<MailItem>& of = overflow_[t];
    while (!of.empty() && MoveOverflowItem(t)) ShardCounters::Inc(counters_.mail_pushed);
    if (of.empty() && !paused_by_[t].empty()) {
      for (ConnId cid : paused_by_[t]) {
        Conn* c = Lookup(cid);
        if (c == nullptr || c->bp_pauses == 0) continue;
        if (--c->bp_pauses == 0 && ReadingWanted(*c) && !c->recv_armed) ArmRecv(cid.index);
      }
      paused_by_[t].clear();
    }
    if (ring.Publish() > 0 && wake_wanted_[t]) {
      WakeTarget(t);
      // Items still in overflow may need a wake when they move on.
      if (of.empty()) wake_wanted_[t] = false;
    }
    overflow_left |= !of.empty();
  }
  if (!overflow_left && has_overflow_.load(std::memory_order_relaxed)) {
    has_overflow_.store(false, std::memory_order_relaxed);
  }
}

void Shard::WakeTarget(int t) {
  Shard* target = group_->shards_[t].get();
  // Dekker pairing with WaitForWork(): we stored the tail (Publish, release),
  // the target stores sleeping_=true; each then issues a seq_cst fence and
  // reads the other's variable. The fences guarantee at least one side sees
  // the other's store: either the target sees our items and does not sleep,
  // or we see sleeping_ and wake it. exchange(false) makes sure only one
  // producer sends the wake for one sleep.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (target->sleeping_.load(std::memory_order_relaxed) &&
      target->sleeping_.exchange(false, std::memory_order_acq_rel)) {
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_msg_ring(sqe, target->ring_.ring_fd, 0, Ud(kOpWake, 0, 0), 0);
    io_uring_sqe_set_data64(sqe, Ud(kOpMsgRing, 0, 0));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    ShardCounters::Inc(counters_.wakeups_sent);
  } else {
    ShardCounters::Inc(counters_.wakeups_skipped);
  }
}

bool Shard::HasInboundMail() const {
  for (int s = 0; s < shard_count_; ++s) {
    if (s != id_ && inbound_[s]->HasPublished()) return true;
  }
  return false;
}

void Shard::WaitForWork() {
  const bool busy = !dirty_.empty() || !rearm_.empty() || !deferred_closes_.empty();
  if (busy) {
    io_uring_submit_and_get_events(&ring_);
    return;
  }
  Clock::duration wait = Clock::duration::max();
  const Clock::time_point next = timers_.NextDeadline();
  if (next != Clock::time_point::max()) wait = next > now_ ? next - now_ : Clock::duration::zero();
  for (int t = 0; t < shard_count_; ++t) {
    if (t != id_ && !overflow_[t].empty()) {
      wait =
          std::min<Clock::duration>(wait, std::chrono::milliseconds(1));  // poll the full mailbox
    }
  }
  if (stopping_) wait = std::min<Clock::duration>(wait, std::chrono::milliseconds(10));
  if (wait == Clock::duration::zero()) {
    io_uring_submit_and_get_events(&ring_);
    return;
  }
  // Going to sleep: announce it, then re-check the mailboxes (see WakeTarget).
  sleeping_.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (HasInboundMail() || stop_requested_.load(std::memory_order_relaxed)) {
    sleeping_.store(false, std::memory_order_relaxed);
    io_uring_submit_and_get_events(&ring_);
    return;
  }
  ShardCounters::Inc(counters_.sleeps);
  // The sleep is accounted at the next turn's clock read (Run), so waking
  // costs no clock read of its own.
  sleep_start_ = Clock::now();
  counters_.sleeping_since_ns.store(
      std::chrono::duration_cast<std::chrono::nanoseconds>(sleep_start_.time_since_epoch()).count(),
      std::memory_order_relaxed);
  io_uring_cqe* cqe = nullptr;
  if (batch_wait_us_ > 0) {
    // Sleep until kBatchWaitEvents completions are pending, or batch_wait
    // has passed with at least one (or the timer deadline). With
    // DEFER_TASKRUN the kernel does not even wake us before either.
    if (io_uring_sq_ready(&ring_) > 0) io_uring_submit(&ring_);
    __kernel_timespec ts{};
    io_uring_getevents_arg arg{};
    arg.pad = batch_wait_us_;  // min_wait_usec
    if (wait != Clock::duration::max()) {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
      ts.tv_sec = ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      arg.ts = reinterpret_cast<uint64_t>(&ts);
    }
    io_uring_enter2(ring_.ring_fd, 0, kBatchWaitEvents,
                    IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                    reinterpret_cast<sigset_t*>(&arg), sizeof(arg));
  } else if (wait == Clock::duration::max()) {
    io_uring_submit_and_wait(&ring_, 1);
  } else {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    __kernel_timespec ts{};
    ts.tv_sec = ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }
  sleeping_.store(false, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------
// Loop, stop

void Shard::RequestStop() {
  stop_requested_.store(true, std::memory_order_seq_cst);
  const uint64_t one = 1;
  // The eventfd read is always armed, so this ends any io_uring_enter wait.
  [[maybe_unused]] ssize_t r = ::write(event_fd_, &one, sizeof(one));
}

void Shard::BeginShutdown() {
  stopping_ = true;
  stop_deadline_ = now_ + group_->options_.shutdown_flush_timeout;
  for (uint32_t li = 0; li < listeners_.size(); ++li) {
    Listener& l = *listeners_[li];
    if (l.closed) continue;
    if (l.armed) {
      io_uring_sqe* sqe = GetSqe();
      io_uring_prep_cancel64(sqe, Ud(kOpAccept, li, 0), 0);
      io_uring_sqe_set_data64(sqe, Ud(kOpCancel, 0, 0));
      ++inflight_ops_;
    }
    ::close(l.fd);  // the pending accept holds its own file reference until cancelled
    l.closed = true;
    ++report_.listeners_closed;
  }
  handler_->OnShutdown();
  for (uint32_t i = 0; i < conns_.size(); ++i) {
    if (conns_[i].state == ConnState::kOpen) StartClosing(i, CloseReason::kShutdown, true);
    if (conns_[i].state == ConnState::kProxyHeader) DropUnopened(i);
  }
}

void Shard::ShutdownTick() {
  bool any = false;
  const bool late = now_ >= stop_deadline_;
  for (uint32_t i = 0; i < conns_.size(); ++i) {
    Conn& c = conns_[i];
    if (c.state == ConnState::kFree) continue;
    if (c.state == ConnState::kOpen) {  // opened after BeginShutdown (hand-off race)
      StartClosing(i, CloseReason::kShutdown, true);
    } else if (c.state == ConnState::kProxyHeader) {
      DropUnopened(i);
    }
    any = true;
    if (late && !c.abort && c.state != ConnState::kFree) {
      c.abort = true;
      if (c.send_inflight || c.recv_armed) {
        io_uring_sqe* sqe = GetSqe();
        io_uring_prep_cancel_fd(sqe, c.fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, Ud(kOpCancel, i, c.generation));
        ++inflight_ops_;
      }
      MaybeFinalize(i);
    }
  }
  DispatchDeferredCloses();
  // Pending file writes are the store's log: wait for them (a hung disk is
  // given up on 10 s past the flush deadline).
  if (!any && (file_ops_pending_ == 0 || now_ >= stop_deadline_ + std::chrono::seconds(10))) {
    done_ = true;
  }
}

void Shard::Run() {
  now_ = Clock::now();
  counters_.loop_started_ns.store(NowNs(), std::memory_order_relaxed);
  for (uint32_t li = 0; li < listeners_.size(); ++li) ArmAccept(li);
  {
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_read(sqe, event_fd_, &event_buf_, sizeof(event_buf_), 0);
    io_uring_sqe_set_data64(sqe, Ud(kOpEvent, 0, 0));
    ++inflight_ops_;
  }
  io_uring_submit(&ring_);
  internal::tls_shard_id = id_;
  tls_shard = this;
  while (!done_) {
    now_ = Clock::now();
    if (sleep_start_ != Clock::time_point{}) {
      ShardCounters::Inc(
          counters_.sleep_ns,
          static_cast<uint64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(now_ - sleep_start_).count()));
      counters_.sleeping_since_ns.store(0, std::memory_order_relaxed);
      sleep_start_ = Clock::time_point{};
    }
    ShardCounters::Inc(counters_.loop_turns);
    ProcessCompletions();
    DispatchDeferredCloses();
    DrainMailboxes();
    group_->external_[id_]->Drain(*handler_);  // tasks from non-shard threads
    DispatchDeferredCloses();
    const size_t fired = timers_.RunExpired(now_);
    if (fired > 0) ShardCounters::Inc(counters_.timers_fired, fired);
    DispatchDeferredCloses();
    if (!stopping_ && stop_requested_.load(std::memory_order_acquire)) {
      BeginShutdown();
      DispatchDeferredCloses();
    }
    handler_->OnLoopTurnEnd();
    DispatchDeferredCloses();
    FlushSends();
    RearmReceives();
    FlushOutboundMail();
    if (stopping_) ShutdownTick();
    if (done_) break;
    WaitForWork();
  }
  // No task runs after this turn: tell their waiters now rather than at
  // Join(), which a waiting thread may be the one to call.
  group_->external_[id_]->Close();
  // From here on a last Unref() deletes at once; free what is still batched
  // here (a cross-thread free, as any thread may do).
  tls_shard = nullptr;
  internal::tls_shard_id = -1;
  for (ReturnBatch*& b : return_batch_) {
    if (b != nullptr) FreeReturnBatch(b);
    b = nullptr;
  }
  io_uring_submit(&ring_);  // e.g. a last MSG_RING wake, while every ring is alive
  // Wait until every shard has left its loop: after that nobody sends MSG_RING
  // to our ring, so it can be torn down here, on its own thread (tearing a
  // ring down on another thread queues task work there and makes that
  // thread's blocking syscalls fail with EINTR).
  group_->loops_done_.fetch_add(1, std::memory_order_acq_rel);
  group_->loops_done_.notify_all();
  for (int d = group_->loops_done_.load(std::memory_order_acquire); d < shard_count_;
       d = group_->loops_done_.load(std::memory_order_acquire)) {
    group_->loops_done_.wait(d, std::memory_order_acquire);
  }
  FinalDrain();
  io_uring_queue_exit(&ring_);
  ring_ready_ = false;
}

void Shard::FinalDrain() {
  final_drain_ = true;
  // Publish whatever is staged so Join() can deliver it, with what the
  // handler still held back.
  handler_->OnMailFlush();
  for (int t = 0; t < shard_count_; ++t) {
    if (t == id_) continue;
    while (!overflow_[t].empty() && MoveOverflowItem(t)) {
    }
    outbound_[t]->Publish();
  }
  // Cancel whatever is still pending (the eventfd read) and wait for every
  // completion so no kernel operation outlives the memory it references.
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
  io_uring_sqe_set_data64(sqe, Ud(kOpCancel, 0, 0));
  ++inflight_ops_;
  const Clock::time_point give_up = Clock::now() + std::chrono::seconds(2);
  while (inflight_ops_ > 0 && Clock::now() < give_up) {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{0, 10 * 1000 * 1000};
    io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    ProcessCompletions();
  }
  if (inflight_ops_ > 0) {
    SHARDMQ_LOG(kWarning, "shard %d: %llu operations still pending at exit", id_,
                static_cast<unsigned long long>(inflight_ops_));
  }
}

}  // namespace shardmq::shard
