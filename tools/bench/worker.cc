#include "worker.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "base/check.h"
#include "mqtt/encoder.h"
#include "stamp.h"

namespace shardmq::bench {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

namespace {

// Bounds on one loop turn, so no connection starves the others.
constexpr int kMaxBatch = 256;              // PUBLISHes per publisher per turn.
constexpr size_t kMaxPendingOut = 1 << 20;  // Unwritten bytes before a publisher waits.
constexpr int kMaxReadsPerEvent = 4;
// QoS 0 flow control: a PINGREQ after every window/kMaxPings PUBLISHes, at
// most kMaxPings unanswered. The broker answers a PINGREQ only after it has
// read the PUBLISHes before it, so at most ~window QoS 0 PUBLISHes sit
// unread in the broker's socket buffers and queues.
constexpr int kMaxPings = 4;
constexpr uint64_t kMaxWaitNs = 10'000'000;  // The loop looks at the phase this often.

std::string Describe(const Config& c) { return absl::StrFormat("%s:%d", c.host, c.port); }

}  // namespace

struct Worker::Conn {
  enum class State : uint8_t { kIdle, kTcp, kConnack, kReady, kSubscribing, kSubscribed, kClosed };

  explicit Conn(ClientSpec s) : spec(std::move(s)) {}

  ClientSpec spec;
  int fd = -1;
  State state = State::kIdle;
  mqtt::StreamDecoder decoder;
  OutBuffer out;
  bool dirty = false;
  bool want_write = false;
  uint64_t connect_start_ns = 0;

  // Publisher.
  std::vector<uint8_t> payload;
  std::string topic_buf;  // retained: the per-message topic.
  uint64_t seq = 0;
  uint64_t start_ns = 0;
  uint32_t inflight = 0;
  uint32_t window = 1;
  uint16_t last_id = 0;
  int pings = 0;
  uint32_t since_ping = 0;
  bool scheduled = false;
  bool retained_done = false;

  // Subscriber: one tracker per publisher it hears from.
  absl::flat_hash_map<uint32_t, SeqTracker> streams;
  // The tracker of the publisher last heard from (fan-out and p2p hear from
  // one): skips the map's probe per message. Taken after any insert, which
  // may move the map's values, so it never dangles.
  uint32_t last_publisher = 0;
  SeqTracker* last_stream = nullptr;

  SeqTracker& StreamOf(uint32_t publisher) {
    if (last_stream == nullptr || publisher != last_publisher) {
      last_stream = &streams[publisher];
      last_publisher = publisher;
    }
    return *last_stream;
  }
};

Worker::Worker(Shared* shared, std::vector<ClientSpec> clients)
    : shared_(shared), config_(shared->config) {
  conns_.reserve(clients.size());
  for (ClientSpec& spec : clients) {
    auto c = std::make_unique<Conn>(std::move(spec));
    c->decoder.set_protocol_version(config_.version());
    if (c->spec.role == Role::kPublisher) {
      c->payload.assign(static_cast<size_t>(config_.payload), 'x');
      c->window = static_cast<uint32_t>(config_.Window());
    }
    conns_.push_back(std::move(c));
  }
}

Worker::~Worker() {
  for (auto& c : conns_) {
    if (c->fd >= 0) close(c->fd);
  }
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

std::vector<std::pair<uint32_t, const absl::flat_hash_map<uint32_t, SeqTracker>*>> Worker::Streams()
    const {
  std::vector<std::pair<uint32_t, const absl::flat_hash_map<uint32_t, SeqTracker>*>> out;
  for (const auto& c : conns_) {
    if (c->spec.role == Role::kSubscriber) out.emplace_back(c->spec.index, &c->streams);
  }
  return out;
}

void Worker::Run() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  SHARDMQ_CHECK(epoll_fd_ >= 0);
  read_buf_.resize(256 * 1024);
  open_start_ns_ = NowNs();
  std::vector<epoll_event> events(1024);
  while (true) {
    const Phase target = shared_->phase.load(std::memory_order_acquire);
    uint64_t now = NowNs();
    while (phase_ < target) {
      phase_ = static_cast<Phase>(static_cast<int>(phase_) + 1);
      OnPhase(phase_, now);
    }
    if (phase_ == Phase::kStop) break;
    if (phase_ == Phase::kConnect) OpenMoreConnections(now);
    ServiceSchedule(now);
    flushing_.swap(dirty_);
    for (Conn* c : flushing_) {
      c->dirty = false;
      Flush(c);
      // A publisher that stopped because its output passed kMaxPendingOut is
      // not scheduled; if this write drained it, nothing else would restart
      // it (EPOLLOUT never fires, and below --inflight/4 PUBLISHes no
      // PINGRESP comes): payloads of 8 KiB and more used to stall after
      // 1 MiB.
      if (c->fd >= 0 && c->out.empty()) TrySend(c, now);
    }
    flushing_.clear();
    PublishCounters();

    uint64_t wait = kMaxWaitNs;
    if (!schedule_.empty()) {
      now = NowNs();
      const uint64_t due = schedule_.top().first;
      wait = due <= now ? 0 : std::min(wait, due - now);
    }
    const timespec ts{static_cast<time_t>(wait / 1'000'000'000),
                      static_cast<long>(wait % 1'000'000'000)};
    const int n =
        epoll_pwait2(epoll_fd_, events.data(), static_cast<int>(events.size()), &ts, nullptr);
    for (int i = 0; i < n; ++i) {
      Conn* c = static_cast<Conn*>(events[i].data.ptr);
      const uint32_t ev = events[i].events;
      if (c->state == Conn::State::kClosed) continue;
      if (c->state == Conn::State::kTcp) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) OnWritable(c);
        continue;
      }
      if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) OnReadable(c);
      if (c->state != Conn::State::kClosed && (ev & EPOLLOUT)) OnWritable(c);
    }
  }
  // Stop: a polite DISCONNECT, best effort, then close.
  for (auto& c : conns_) {
    if (c->fd < 0) continue;
    if (c->state >= Conn::State::kReady) {
      mqtt::Disconnect d;
      const size_t size = mqtt::EncodedSize(d, config_.version());
      mqtt::Encode(d, config_.version(), c->out.Append(size));
      (void)send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    close(c->fd);
    c->fd = -1;
    c->state = Conn::State::kClosed;
  }
  PublishCounters();
}

void Worker::OnPhase(Phase phase, uint64_t now) {
  switch (phase) {
    case Phase::kConnect:
      break;
    case Phase::kRetainedPublish:
      for (auto& c : conns_) {
        if (c->spec.role == Role::kPublisher && c->spec.retained) TrySend(c.get(), now);
      }
      break;
    case Phase::kSubscribe:
      for (auto& c : conns_) {
        if (c->spec.role == Role::kSubscriber && c->state == Conn::State::kReady) {
          SendSubscribe(c.get());
        }
      }
      break;
    case Phase::kPublish: {
      measure_start_ns_ = shared_->measure_start_ns;
      measure_end_ns_ = shared_->measure_end_ns;
      // Publishers start staggered over one send interval so a fixed rate
      // does not arrive in bursts of P messages.
      const uint64_t interval = config_.rate > 0 ? static_cast<uint64_t>(1e9 / config_.rate) : 0;
      const uint64_t total = std::max<uint64_t>(1, shared_->sent_per_publisher.size());
      for (auto& c : conns_) {
        if (c->spec.role != Role::kPublisher || c->spec.retained) continue;
        c->start_ns = shared_->start_ns + interval * c->spec.index / total;
        c->scheduled = true;
        schedule_.emplace(config_.rate > 0 ? c->start_ns : now, c.get());
      }
      break;
    }
    case Phase::kDrain:
      StopPublishing();
      break;
    case Phase::kStop:
      break;
  }
}

void Worker::StopPublishing() {
  while (!schedule_.empty()) {
    schedule_.top().second->scheduled = false;
    schedule_.pop();
  }
  for (auto& c : conns_) {
    if (c->spec.role != Role::kPublisher) continue;
    shared_->sent_per_publisher[c->spec.index] = c->seq;
    // retained: clear what we left on the broker (an empty retained PUBLISH
    // deletes), so runs against a long-lived broker do not pile up.
    if (c->spec.retained && c->state == Conn::State::kReady) {
      for (uint64_t i = 0; i < c->seq; ++i) {
        mqtt::Publish p;
        c->topic_buf = absl::StrFormat("%s/%d", c->spec.topic, i);
        p.topic = c->topic_buf;
        p.retain = true;
        const size_t size = mqtt::EncodedSize(p, config_.version());
        mqtt::Encode(p, config_.version(), c->out.Append(size));
      }
      MarkDirty(c.get());
    }
  }
  shared_->workers_stopped_publishing.fetch_add(1, std::memory_order_release);
}

void Worker::OpenMoreConnections(uint64_t now) {
  const bool storm = config_.scenario == Scenario::kConn;
  const int threads = config_.threads;
  const int parallel = std::max(1, config_.conn_parallel / threads);
  uint64_t allowed = conns_.size();
  if (storm && config_.conn_rate > 0) {
    const double per_thread = config_.conn_rate / threads;
    allowed =
        static_cast<uint64_t>(static_cast<double>(now - open_start_ns_) * per_thread / 1e9) + 1;
  }
  while (next_to_open_ < conns_.size() && handshaking_ < parallel && next_to_open_ < allowed) {
    ++handshaking_;
    StartConnect(conns_[next_to_open_++].get(), now);
  }
}

void Worker::StartConnect(Conn* c, uint64_t now) {
  c->connect_start_ns = now;
  uint64_t zero = 0;
  shared_->first_connect_ns.compare_exchange_strong(zero, now);
  const bool to_sub_address = c->spec.role == Role::kSubscriber;
  const sockaddr_storage& address = to_sub_address ? shared_->sub_address : shared_->address;
  const socklen_t address_len = to_sub_address ? shared_->sub_address_len : shared_->address_len;
  c->fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    CloseWithError(c, absl::StrFormat("socket(): %s (raise ulimit -n?)", strerror(errno)));
    return;
  }
  // The conn scenario sends nothing after CONNECT: Nagle cannot delay it.
  if (config_.scenario != Scenario::kConn) {
    const int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (connect(c->fd, reinterpret_cast<const sockaddr*>(&address), address_len) < 0 &&
      errno != EINPROGRESS) {
    CloseWithError(c,
                   absl::StrFormat("cannot connect to %s: %s", Describe(config_), strerror(errno)));
    return;
  }
  // Pipelined CONNECT: on loopback the handshake has usually finished inside
  // connect(), so send CONNECT at once instead of waiting for EPOLLOUT (which
  // costs an epoll round trip, SO_ERROR and an epoll_ctl per connection). If
  // the socket is not writable yet (EAGAIN while SYN_SENT), the packet stays
  // in `out` and goes when EPOLLOUT says the connection is up.
  EncodeConnect(c);
  c->state = Conn::State::kTcp;
  bool writable = true;
  while (!c->out.empty()) {
    const ssize_t n = send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c->out.Consume(static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == ENOTCONN)) {
      writable = false;
      break;
    } else {
      CloseWithError(c, absl::StrFormat("cannot connect to %s: %s", Describe(config_),
                                        strerror(n < 0 ? errno : EPIPE)));
      return;
    }
  }
  if (writable) {
    c->state = Conn::State::kConnack;
    ++pipelined_connects_;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (writable ? 0u : uint32_t{EPOLLOUT});
  ev.data.ptr = c;
  c->want_write = !writable;
  SHARDMQ_CHECK(epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c->fd, &ev) == 0);
}

void Worker::WantWrite(Conn* c, bool on) {
  if (c->want_write == on || c->fd < 0) return;
  c->want_write = on;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (on ? uint32_t{EPOLLOUT} : 0u);
  ev.data.ptr = c;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
}

void Worker::CloseWithError(Conn* c, std::string why) {
  const bool connecting = c->state < Conn::State::kReady;
  if (phase_ < Phase::kStop) shared_->Fail(std::move(why), connecting);
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->state = Conn::State::kClosed;
}

void Worker::OnWritable(Conn* c) {
  if (c->state == Conn::State::kTcp) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      CloseWithError(c,
                     absl::StrFormat("cannot connect to %s: %s", Describe(config_), strerror(err)));
      return;
    }
    c->state = Conn::State::kConnack;
    Flush(c);  // the CONNECT StartConnect could not send yet
    return;
  }
  Flush(c);
  if (c->out.empty()) TrySend(c, NowNs());
}

void Worker::MarkDirty(Conn* c) {
  if (!c->dirty) {
    c->dirty = true;
    dirty_.push_back(c);
  }
}

void Worker::Flush(Conn* c) {
  while (c->fd >= 0 && !c->out.empty()) {
    const ssize_t n = send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c->out.Consume(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (errno == EAGAIN) {
        WantWrite(c, true);
        return;
      }
      continue;
    }
    CloseWithError(c, absl::StrFormat("write to %s failed for client %s: %s", Describe(config_),
                                      c->spec.client_id, strerror(errno)));
    return;
  }
  if (c->fd >= 0) WantWrite(c, false);
}

void Worker::EncodeConnect(Conn* c) {
  mqtt::Connect p;
  p.version = config_.version();
  // Only subscribers hold sessions worth keeping (--session-expiry).
  const bool persistent = config_.session_expiry > 0 && c->spec.role == Role::kSubscriber;
  p.clean_start = !persistent;
  if (persistent && config_.version() == mqtt::ProtocolVersion::kV5) {
    p.properties.session_expiry_interval = config_.session_expiry;
  }
  p.keep_alive = static_cast<uint16_t>(config_.keepalive);
  p.client_id = c->spec.client_id;
  const size_t size = mqtt::EncodedSize(p, config_.version());
  mqtt::Encode(p, config_.version(), c->out.Append(size));
}

void Worker::SendSubscribe(Conn* c) {
  mqtt::Subscribe p;
  p.packet_id = 1;
  mqtt::Subscription s;
  s.filter = c->spec.filter;
  s.options.qos = static_cast<uint8_t>(config_.qos);
  p.subscriptions.push_back(s);
  const size_t size = mqtt::EncodedSize(p, config_.version());
  mqtt::Encode(p, config_.version(), c->out.Append(size));
  c->state = Conn::State::kSubscribing;
  if (config_.scenario == Scenario::kRetained) shared_->retained_subscribe_ns.store(NowNs());
  MarkDirty(c);
}

void Worker::OnReadable(Conn* c) {
  for (int i = 0; i < kMaxReadsPerEvent && c->fd >= 0; ++i) {
    const ssize_t n = recv(c->fd, read_buf_.data(), read_buf_.size(), 0);
    if (n == 0) {
      CloseWithError(c, absl::StrFormat("broker at %s closed the connection of client %s%s",
                                        Describe(config_), c->spec.client_id,
                                        c->state < Conn::State::kReady ? " before CONNACK" : ""));
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      CloseWithError(c, absl::StrFormat("read from %s failed for client %s: %s", Describe(config_),
                                        c->spec.client_id, strerror(errno)));
      return;
    }
    recv_now_ = NowNs();
    const mqtt::DecodeResult r =
        c->decoder.Feed(absl::MakeConstSpan(read_buf_.data(), static_cast<size_t>(n)),
                        [&](const mqtt::Packet& p) { return OnPacket(c, p); });
    if (r.status == mqtt::DecodeStatus::kError) {
      CloseWithError(c, absl::StrFormat("bad packet from %s for client %s: %s", Describe(config_),
                                        c->spec.client_id, r.what));
      return;
    }
    if (static_cast<size_t>(n) < read_buf_.size()) return;
  }
}

bool Worker::OnPacket(Conn* c, const mqtt::Packet& packet) {
  switch (mqtt::GetPacketType(packet)) {
    case mqtt::PacketType::kConnack: {
      const auto& p = std::get<mqtt::Connack>(packet);
      const bool v5 = config_.version() == mqtt::ProtocolVersion::kV5;
      if (v5 ? mqtt::IsError(p.reason_code) : p.return_code != mqtt::ConnectReturnCode::kAccepted) {
        CloseWithError(c, absl::StrFormat("broker at %s refused CONNECT of client %s: %s",
                                          Describe(config_), c->spec.client_id,
                                          v5 ? mqtt::ReasonCodeName(p.reason_code)
                                             : mqtt::ConnectReturnCodeName(p.return_code)));
        return false;
      }
      // MQTT 5: never exceed the broker's Receive Maximum.
      if (p.properties.receive_maximum) {
        c->window = std::min<uint32_t>(c->window, *p.properties.receive_maximum);
      }
      c->state = Conn::State::kReady;
      --handshaking_;
      connect_latency_.Record(recv_now_ - c->connect_start_ns);
      uint64_t last = shared_->last_connack_ns.load(std::memory_order_relaxed);
      while (last < recv_now_ && !shared_->last_connack_ns.compare_exchange_weak(last, recv_now_)) {
      }
      shared_->connected.fetch_add(1, std::memory_order_release);
      if (c->spec.role == Role::kSubscriber && phase_ >= Phase::kSubscribe) SendSubscribe(c);
      if (c->spec.role == Role::kPublisher) TrySend(c, recv_now_);
      return true;
    }
    case mqtt::PacketType::kSuback: {
      const auto& p = std::get<mqtt::Suback>(packet);
      for (mqtt::ReasonCode code : p.reason_codes) {
        if (mqtt::IsError(code)) {
          CloseWithError(c, absl::StrFormat("broker at %s refused SUBSCRIBE %s of client %s: %s",
                                            Describe(config_), c->spec.filter, c->spec.client_id,
                                            mqtt::ReasonCodeName(code)));
          return false;
        }
      }
      if (c->state == Conn::State::kSubscribing) {
        c->state = Conn::State::kSubscribed;
        shared_->subscribed.fetch_add(1, std::memory_order_release);
      }
      return true;
    }
    case mqtt::PacketType::kPublish:
      OnPublish(c, std::get<mqtt::Publish>(packet));
      return true;
    case mqtt::PacketType::kPuback:
    case mqtt::PacketType::kPubcomp:
      if (c->inflight > 0) {
        --c->inflight;
        --unreported_inflight_;
      }
      TrySend(c, recv_now_);
      return true;
    case mqtt::PacketType::kPubrec: {
      const auto& p = std::get<mqtt::PubAck>(packet);
      AppendAck(c, mqtt::PacketType::kPubrel, p.packet_id);
      return true;
    }
    case mqtt::PacketType::kPubrel: {
      const auto& p = std::get<mqtt::PubAck>(packet);
      AppendAck(c, mqtt::PacketType::kPubcomp, p.packet_id);
      return true;
    }
    case mqtt::PacketType::kPingresp:
      if (c->pings > 0) --c->pings;
      TrySend(c, recv_now_);
      return true;
    case mqtt::PacketType::kDisconnect: {
      const auto& p = std::get<mqtt::Disconnect>(packet);
      CloseWithError(
          c, absl::StrFormat("broker at %s sent DISCONNECT (%s) to client %s", Describe(config_),
                             mqtt::ReasonCodeName(p.reason_code), c->spec.client_id));
      return false;
    }
    default:
      return true;
  }
}

void Worker::OnPublish(Conn* c, const mqtt::Publish& p) {
  ++unreported_received_;
  if (!p.payload.empty() && c->spec.role == Role::kSubscriber) {
    const std::optional<Stamp> stamp = ReadStamp(p.payload);
    if (!stamp) {
      ++foreign_;
    } else {
      SeqTracker& t = c->StreamOf(stamp->publisher);
      t.Record(stamp->sequence);
      if (config_.scenario == Scenario::kRetained) {
        shared_->retained_last_ns.store(recv_now_, std::memory_order_relaxed);
        if (t.unique() == static_cast<uint64_t>(config_.retained)) {
          shared_->retained_done_ns.store(recv_now_);
        }
      } else if (stamp->intended_ns >= measure_start_ns_ && stamp->intended_ns < measure_end_ns_) {
        latency_.Record(recv_now_ > stamp->intended_ns ? recv_now_ - stamp->intended_ns : 0);
        ++measured_;
      }
    }
  }
  if (p.qos == 1) AppendAck(c, mqtt::PacketType::kPuback, p.packet_id);
  if (p.qos == 2) AppendAck(c, mqtt::PacketType::kPubrec, p.packet_id);
}

void Worker::AppendAck(Conn* c, mqtt::PacketType type, uint16_t id) {
  mqtt::PubAck a;
  a.type = type;
  a.packet_id = id;
  const size_t size = mqtt::EncodedSize(a, config_.version());
  mqtt::Encode(a, config_.version(), c->out.Append(size));
  MarkDirty(c);
}

void Worker::AppendPing(Conn* c) {
  const mqtt::PingReq p;
  const size_t size = mqtt::EncodedSize(p, config_.version());
  mqtt::Encode(p, config_.version(), c->out.Append(size));
  ++c->pings;
  c->since_ping = 0;
}

bool Worker::WindowOpen(const Conn* c) const {
  if (c->out.size() >= kMaxPendingOut) return false;  // TCP back-pressure.
  return config_.qos == 0 ? c->pings < kMaxPings : c->inflight < c->window;
}

void Worker::ServiceSchedule(uint64_t now) {
  while (!schedule_.empty() && schedule_.top().first <= now) {
    Conn* c = schedule_.top().second;
    schedule_.pop();
    c->scheduled = false;
    TrySend(c, now);
  }
}

void Worker::TrySend(Conn* c, uint64_t now) {
  if (c->spec.role != Role::kPublisher || c->scheduled || c->state != Conn::State::kReady) return;
  const bool retained = c->spec.retained;
  if (phase_ != (retained ? Phase::kRetainedPublish : Phase::kPublish)) return;
  const bool fixed_rate = config_.rate > 0 && !retained;
  const uint64_t limit = retained ? static_cast<uint64_t>(config_.retained) : UINT64_MAX;
  for (int n = 0; n < kMaxBatch && c->seq < limit && WindowOpen(c); ++n) {
    uint64_t intended = now;
    if (fixed_rate) {
      intended = IntendedSendNs(c->start_ns, config_.rate, c->seq);
      if (intended > now) break;
    }
    SendPublish(c, intended);
  }
  if (retained && c->seq >= limit) {
    if (config_.qos == 0 && c->since_ping > 0) AppendPing(c);
    if (c->inflight == 0 && c->pings == 0 && !c->retained_done) {
      c->retained_done = true;
      shared_->retained_published.store(true, std::memory_order_release);
    }
    return;
  }
  // Blocked by the window: the ack, PINGRESP or writability that opens it
  // calls TrySend again. Otherwise wait for the next due time.
  if (!WindowOpen(c)) return;
  c->scheduled = true;
  schedule_.emplace(fixed_rate ? IntendedSendNs(c->start_ns, config_.rate, c->seq) : now, c);
}

void Worker::SendPublish(Conn* c, uint64_t intended_ns) {
  WriteStamp(Stamp{.publisher = c->spec.index, .sequence = c->seq, .intended_ns = intended_ns},
             absl::MakeSpan(c->payload));
  mqtt::Publish p;
  if (c->spec.retained) {
    c->topic_buf = absl::StrFormat("%s/%d", c->spec.topic, c->seq);
    p.topic = c->topic_buf;
    p.retain = true;
  } else {
    p.topic = c->spec.topic;
  }
  p.payload = absl::MakeConstSpan(c->payload);
  p.qos = static_cast<uint8_t>(config_.qos);
  if (p.qos > 0) {
    if (++c->last_id == 0) c->last_id = 1;
    p.packet_id = c->last_id;
  }
  const size_t size = mqtt::EncodedSize(p, config_.version());
  mqtt::Encode(p, config_.version(), c->out.Append(size));
  ++c->seq;
  ++unreported_sent_;
  if (intended_ns >= measure_start_ns_ && intended_ns < measure_end_ns_) {
    ++sent_in_window_;
  }
  if (p.qos > 0) {
    ++c->inflight;
    ++unreported_inflight_;
  } else if (++c->since_ping >= std::max<uint32_t>(1, c->window / kMaxPings)) {
    AppendPing(c);
  }
  MarkDirty(c);
}

void Worker::PublishCounters() {
  if (unreported_sent_) shared_->sent.fetch_add(unreported_sent_, std::memory_order_relaxed);
  if (unreported_received_) {
    shared_->received.fetch_add(unreported_received_, std::memory_order_relaxed);
  }
  if (unreported_inflight_) {
    shared_->inflight.fetch_add(unreported_inflight_, std::memory_order_relaxed);
  }
  unreported_sent_ = unreported_received_ = 0;
  unreported_inflight_ = 0;
}

}  // namespace shardmq::bench
