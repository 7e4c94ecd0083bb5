// See amqp_link.h. rabbitmq-c is blocking; only the link thread calls it.
#include "cluster/amqp_link.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "base/log.h"
#include "cluster/amqp_keys.h"

namespace shardmq::cluster {
namespace {

// Messages published before waiting for their confirms.
constexpr size_t kPublishBatch = 1024;
// Unacked deliveries RabbitMQ may have in flight to this node.
constexpr uint16_t kPrefetch = 1024;
// The key every node binds: retained messages reach every node.
constexpr std::string_view kRetainedKey = "r";
constexpr int kChannel = 1;
// The node queue's consumer tag; a shared queue's is the queue's name.
constexpr std::string_view kNodeConsumerTag = "node";
// Long enough for a busy RabbitMQ, short enough to notice a dead one.
constexpr timeval kRpcTimeout = {5, 0};

amqp_bytes_t Bytes(std::string_view s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());
  return b;
}

std::string_view View(amqp_bytes_t b) {
  return std::string_view(static_cast<const char*>(b.bytes), b.len);
}

std::string Describe(amqp_rpc_reply_t reply) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return "ok";
    case AMQP_RESPONSE_NONE:
      return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return amqp_error_string2(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* m = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
        return absl::StrFormat("connection closed by server: %d %s", m->reply_code,
                               View(m->reply_text));
      }
      if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* m = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
        return absl::StrFormat("channel closed by server: %d %s", m->reply_code,
                               View(m->reply_text));
      }
      return absl::StrFormat("server exception, method 0x%08x", reply.reply.id);
  }
  return "unknown reply";
}

absl::Status Check(amqp_connection_state_t state, const char* what) {
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(state);
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return absl::OkStatus();
  return absl::UnavailableError(absl::StrFormat("%s: %s", what, Describe(reply)));
}

// amqp_parse_url writes into its argument and points into it: the parsed
// URL owns the buffer.
struct ParsedUrl {
  std::vector<char> buffer;
  amqp_connection_info info{};
};

absl::StatusOr<std::unique_ptr<ParsedUrl>> ParseUrl(const std::string& url) {
  auto parsed = std::make_unique<ParsedUrl>();
  parsed->buffer.assign(url.begin(), url.end());
  parsed->buffer.push_back('\0');
  amqp_default_connection_info(&parsed->info);
  if (amqp_parse_url(parsed->buffer.data(), &parsed->info) != AMQP_STATUS_OK) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--cluster-amqp=%s: not an amqp://user:pass@host:port/vhost URL", url));
  }
  if (parsed->info.ssl) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--cluster-amqp=%s: amqps:// is not supported yet", url));
  }
  return parsed;
}

int64_t MonotonicNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// One rabbitmq-c connection with channel kChannel open.
class AmqpLink::Connection {
 public:
  ~Connection() {
    if (state_ == nullptr) return;
    // Best effort: the peer may be gone already.
    if (open_) {
      amqp_channel_close(state_, kChannel, AMQP_REPLY_SUCCESS);
      amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(state_);
  }

  absl::Status Open(const std::string& url) {
    absl::StatusOr<std::unique_ptr<ParsedUrl>> parsed = ParseUrl(url);
    if (!parsed.ok()) return parsed.status();
    const amqp_connection_info& info = (*parsed)->info;
    state_ = amqp_new_connection();
    amqp_socket_t* socket = amqp_tcp_socket_new(state_);
    if (socket == nullptr) return absl::InternalError("amqp_tcp_socket_new failed");
    timeval timeout = kRpcTimeout;
    int status = amqp_socket_open_noblock(socket, info.host, info.port, &timeout);
    if (status != AMQP_STATUS_OK) {
      return absl::UnavailableError(absl::StrFormat("connecting to %s:%d: %s", info.host, info.port,
                                                    amqp_error_string2(status)));
    }
    // "amqp://host:port/" names the empty vhost; RabbitMQ's default is "/".
    const char* vhost = info.vhost != nullptr && info.vhost[0] != '\0' ? info.vhost : "/";
    // Heartbeats off: rabbitmq-c only answers them inside its own calls,
    // and the publishing connection may sit idle; a dead peer shows as a
    // socket error on the next call.
    amqp_rpc_reply_t reply =
        amqp_login(state_, vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
      return absl::UnavailableError(absl::StrFormat("login: %s", Describe(reply)));
    }
    open_ = true;
    amqp_channel_open(state_, kChannel);
    return Check(state_, "channel.open");
  }

  amqp_connection_state_t state() const { return state_; }

 private:
  amqp_connection_state_t state_ = nullptr;
  bool open_ = false;
};

absl::StatusOr<std::unique_ptr<AmqpLink>> AmqpLink::Create(AmqpLinkOptions options,
                                                           Deliver deliver) {
  if (absl::StatusOr<std::unique_ptr<ParsedUrl>> parsed = ParseUrl(options.url); !parsed.ok()) {
    return parsed.status();
  }
  if (options.node_id.empty() || options.node_id.size() > 200) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--node-id=%s: must be 1 to 200 bytes", options.node_id));
  }
  if (options.exchange.empty() || options.exchange.size() > 255) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--cluster-exchange=%s: must be 1 to 255 bytes", options.exchange));
  }
  if (options.max_buffered == 0) {
    return absl::InvalidArgumentError("--cluster-buffer=0: must be at least 1");
  }
  return std::unique_ptr<AmqpLink>(new AmqpLink(std::move(options), std::move(deliver)));
}

AmqpLink::AmqpLink(AmqpLinkOptions options, Deliver deliver)
    : options_(std::move(options)),
      deliver_(std::move(deliver)),
      queue_name_("shardmq.node." + options_.node_id) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

AmqpLink::~AmqpLink() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void AmqpLink::Start() {
  if (running_.exchange(true)) return;
  thread_ = std::thread([this] { Run(); });
}

void AmqpLink::Stop() {
  if (!running_.exchange(false)) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

void AmqpLink::Wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

bool AmqpLink::Publish(std::string_view topic, bool retain, uint8_t qos, std::string body) {
  Outgoing out;
  out.routing_key = retain ? std::string(kRetainedKey) : RoutingKey(topic);
  out.qos = qos;
  // A retained message's copy for the shared queues (they do not bind "r").
  Outgoing shared;
  if (retain) {
    shared.routing_key = RoutingKey(topic);
    shared.body = body;
    shared.qos = qos;
    shared.shared_only = true;
  }
  out.body = std::move(body);
  bool wake = false;
  bool dropped = false;
  bool congested = false;
  uint8_t dropped_qos = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    PushLocked(std::move(out), dropped, dropped_qos);
    if (retain) PushLocked(std::move(shared), dropped, dropped_qos);
    wake = sleeping_;
    sleeping_ = false;
    congested = buffer_.size() > options_.max_buffered / 2;
  }
  if (dropped) NoteDrop(dropped_qos);
  if (wake) Wake();
  return congested && connected_.load(std::memory_order_relaxed);
}

bool AmqpLink::PastCongestion() const {
  if (!connected_.load(std::memory_order_relaxed)) return true;
  std::lock_guard<std::mutex> lock(mutex_);
  return buffer_.size() <= options_.max_buffered / 4;
}

void AmqpLink::PushLocked(Outgoing out, bool& dropped, uint8_t& dropped_qos) {
  const uint8_t qos = out.qos;
  {
    if (buffer_.size() >= options_.max_buffered) {
      // QoS 0 goes first: the new one, else the oldest buffered one.
      dropped = true;
      if (qos == 0) {
        dropped_qos = 0;
      } else if (buffered_qos0_ > 0) {
        // The oldest QoS 0 is usually near the front; the scan is only paid
        // while the buffer is full (RabbitMQ away or far behind).
        auto it = std::find_if(buffer_.begin(), buffer_.end(),
                               [](const Outgoing& o) { return o.qos == 0; });
        buffer_.erase(it);
        --buffered_qos0_;
        dropped_qos = 0;
        buffer_.push_back(std::move(out));
      } else {
        dropped_qos = qos;
      }
    } else {
      if (qos == 0) ++buffered_qos0_;
      buffer_.push_back(std::move(out));
    }
  }
}

void AmqpLink::NoteDrop(uint8_t qos) {
  (qos == 0 ? dropped_qos0_ : dropped_qos12_).fetch_add(1, std::memory_order_relaxed);
  // At most one line a second, whoever drops.
  const uint64_t now = static_cast<uint64_t>(MonotonicNs());
  uint64_t last = last_drop_log_ns_.load(std::memory_order_relaxed);
  if (now - last >= 1'000'000'000 &&
      last_drop_log_ns_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    SHARDMQ_LOG(kWarning,
                "cluster: outgoing buffer full (%u messages): dropped a QoS %d message; "
                "%u QoS 0 and %u QoS 1/2 dropped so far",
                options_.max_buffered, qos, dropped_qos0_.load(std::memory_order_relaxed),
                dropped_qos12_.load(std::memory_order_relaxed));
  }
}

void AmqpLink::FilterAdded(std::string_view filter, absl::AnyInvocable<void()> bound) {
  if (bound != nullptr && !connected_.load(std::memory_order_relaxed)) {
    // Nothing to wait for: the bindings are made when the link connects.
    bound();
    bound = nullptr;
  }
  PushInterest({std::string(filter), {}, /*added=*/true, /*shared=*/false, std::move(bound)});
}

void AmqpLink::FilterRemoved(std::string_view filter) {
  PushInterest({std::string(filter), {}, /*added=*/false, /*shared=*/false});
}

void AmqpLink::SharedAdded(std::string_view group, std::string_view filter) {
  PushInterest({std::string(filter), std::string(group), /*added=*/true, /*shared=*/true});
}

void AmqpLink::SharedRemoved(std::string_view group, std::string_view filter) {
  PushInterest({std::string(filter), std::string(group), /*added=*/false, /*shared=*/true});
}

void AmqpLink::PushInterest(InterestEvent event) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    interest_.push_back(std::move(event));
    wake = sleeping_;
    sleeping_ = false;
  }
  if (wake) Wake();
}

AmqpLinkStats AmqpLink::Stats() const {
  AmqpLinkStats s;
  s.published = published_.load(std::memory_order_relaxed);
  s.consumed = consumed_.load(std::memory_order_relaxed);
  s.shared_consumed = shared_consumed_.load(std::memory_order_relaxed);
  s.shared_queues = shared_queues_.load(std::memory_order_relaxed);
  s.own_skipped = own_skipped_.load(std::memory_order_relaxed);
  s.dropped_qos0 = dropped_qos0_.load(std::memory_order_relaxed);
  s.dropped_qos12 = dropped_qos12_.load(std::memory_order_relaxed);
  s.reconnects = reconnects_.load(std::memory_order_relaxed);
  s.bindings = bindings_.load(std::memory_order_relaxed);
  s.connected = connected_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mutex_);
  s.buffered = buffer_.size();
  return s;
}

bool AmqpLink::ConnectAll() {
  auto publisher = std::make_unique<Connection>();
  auto consumer = std::make_unique<Connection>();
  absl::Status status = publisher->Open(options_.url);
  amqp_connection_state_t p = publisher->state();
  if (status.ok()) {
    amqp_confirm_select(p, kChannel);
    status = Check(p, "confirm.select");
  }
  if (status.ok()) {
    amqp_exchange_declare(p, kChannel, Bytes(options_.exchange), amqp_cstring_bytes("topic"),
                          /*passive=*/0, /*durable=*/1, /*auto_delete=*/0, /*internal=*/0,
                          amqp_empty_table);
    status = Check(p, "exchange.declare");
  }
  if (status.ok()) {
    amqp_queue_declare(p, kChannel, Bytes(queue_name_), /*passive=*/0, /*durable=*/1,
                       /*exclusive=*/0, /*auto_delete=*/0, amqp_empty_table);
    status = Check(p, "queue.declare");
  }
  if (status.ok()) {
    amqp_queue_bind(p, kChannel, Bytes(queue_name_), Bytes(options_.exchange), Bytes(kRetainedKey),
                    amqp_empty_table);
    status = Check(p, "queue.bind");
  }
  // Everything it had: the counts survive a lost connection.
  for (const auto& [key, count] : key_counts_) {
    if (!status.ok()) break;
    amqp_queue_bind(p, kChannel, Bytes(queue_name_), Bytes(options_.exchange), Bytes(key),
                    amqp_empty_table);
    status = Check(p, "queue.bind");
  }
  // And what it gave up while the connection was down.
  for (auto it = unbind_pending_.begin(); it != unbind_pending_.end() && status.ok();) {
    amqp_queue_unbind(p, kChannel, Bytes(queue_name_), Bytes(options_.exchange), Bytes(*it),
                      amqp_empty_table);
    status = Check(p, "queue.unbind");
    if (status.ok()) unbind_pending_.erase(it++);
  }
  if (status.ok()) status = consumer->Open(options_.url);
  amqp_connection_state_t c = consumer->state();
  if (status.ok()) {
    amqp_basic_qos(c, kChannel, 0, kPrefetch, 0);
    status = Check(c, "basic.qos");
  }
  if (status.ok()) {
    amqp_basic_consume(c, kChannel, Bytes(queue_name_), Bytes(kNodeConsumerTag), /*no_local=*/0,
                       /*no_ack=*/0, /*exclusive=*/0, amqp_empty_table);
    status = Check(c, "basic.consume");
  }
  if (status.ok()) {
    publisher_ = std::move(publisher);
    consumer_ = std::move(consumer);
    // The shared queues the node has members of: declared, bound and
    // consumed again (a restarted RabbitMQ may have lost them).
    for (auto& [name, queue] : shared_) {
      queue.consuming = false;
      if (status.ok()) status = StartShared(name, queue);
    }
  }
  if (!status.ok()) {
    SHARDMQ_LOG(kWarning, "cluster: RabbitMQ at %s: %s", options_.url, status.message());
    publisher_.reset();
    consumer_.reset();
    return false;
  }
  next_tag_ = 1;  // a new channel in confirm mode counts from 1
  return true;
}

absl::Status AmqpLink::StartShared(const std::string& name, SharedQueue& queue) {
  amqp_connection_state_t p = publisher_->state();
  amqp_table_entry_t expires;
  expires.key = amqp_cstring_bytes("x-expires");
  expires.value.kind = AMQP_FIELD_KIND_I32;
  expires.value.value.i32 = kSharedQueueExpiresMs;
  amqp_table_t arguments;
  arguments.num_entries = 1;
  arguments.entries = &expires;
  amqp_queue_declare(p, kChannel, Bytes(name), /*passive=*/0, /*durable=*/1, /*exclusive=*/0,
                     /*auto_delete=*/0, arguments);
  if (absl::Status status = Check(p, "queue.declare (shared)"); !status.ok()) return status;
  // Bindings are idempotent: declaring and binding again on every 0->1 (or
  // reconnect) is how a queue that expired meanwhile comes back.
  for (const std::string& key : BindingKeys(queue.filter)) {
    amqp_queue_bind(p, kChannel, Bytes(name), Bytes(options_.exchange), Bytes(key),
                    amqp_empty_table);
    if (absl::Status status = Check(p, "queue.bind (shared)"); !status.ok()) return status;
  }
  amqp_connection_state_t c = consumer_->state();
  amqp_basic_consume(c, kChannel, Bytes(name), Bytes(name), /*no_local=*/0, /*no_ack=*/0,
                     /*exclusive=*/0, amqp_empty_table);
  if (absl::Status status = Check(c, "basic.consume (shared)"); !status.ok()) return status;
  queue.consuming = true;
  return absl::OkStatus();
}

void AmqpLink::DisconnectAll() {
  publisher_.reset();
  consumer_.reset();
  connected_.store(false, std::memory_order_relaxed);
}

bool AmqpLink::ApplyInterest() {
  std::deque<InterestEvent> events;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    events.swap(interest_);
  }
  bool ok = true;
  // Called once every event is applied, whether or not its calls to
  // RabbitMQ worked (a failed one is made again at the reconnect).
  std::vector<absl::AnyInvocable<void()>> bound;
  for (InterestEvent& event : events) {
    if (event.bound != nullptr) bound.push_back(std::move(event.bound));
    if (event.shared) {
      const std::string name = SharedQueueName(event.group, event.filter);
      if (event.added) {
        SharedQueue& queue = shared_[name];
        if (queue.count++ > 0) continue;
        queue.group = std::move(event.group);
        queue.filter = std::move(event.filter);
        if (!ok || publisher_ == nullptr) continue;  // ConnectAll starts it
        if (absl::Status status = StartShared(name, queue); !status.ok()) {
          SHARDMQ_LOG(kWarning, "cluster: shared queue %s: %s", name, status.message());
          ok = false;
        }
        continue;
      }
      auto it = shared_.find(name);
      if (it == shared_.end() || --it->second.count > 0) continue;
      const bool consuming = it->second.consuming;
      shared_.erase(it);
      // Deliveries already on their way are sent back (ConsumeSome).
      if (!ok || consumer_ == nullptr || !consuming) continue;
      amqp_connection_state_t c = consumer_->state();
      amqp_basic_cancel(c, kChannel, Bytes(name));
      if (absl::Status status = Check(c, "basic.cancel (shared)"); !status.ok()) {
        // The reconnect consumes only what is still counted.
        SHARDMQ_LOG(kWarning, "cluster: %s", status.message());
        ok = false;
      }
      continue;
    }
    int& count = filter_counts_[event.filter];
    const int before = count;
    count += event.added ? 1 : -1;
    if (count <= 0) filter_counts_.erase(event.filter);
    const bool bind = before == 0 && event.added;
    const bool unbind = before == 1 && !event.added;
    if (!bind && !unbind) continue;
    for (const std::string& key : BindingKeys(event.filter)) {
      int& key_count = key_counts_[key];
      key_count += bind ? 1 : -1;
      const bool change = bind ? key_count == 1 : key_count == 0;
      if (key_count == 0) key_counts_.erase(key);
      if (!change) continue;
      if (bind) {
        unbind_pending_.erase(key);
      } else {
        // Unbound when this succeeds, else after the next connect: a
        // binding left behind would only be a superset, but costs traffic.
        unbind_pending_.insert(key);
      }
      if (!ok || publisher_ == nullptr) continue;  // ConnectAll (re)binds
      amqp_connection_state_t p = publisher_->state();
      if (bind) {
        amqp_queue_bind(p, kChannel, Bytes(queue_name_), Bytes(options_.exchange), Bytes(key),
                        amqp_empty_table);
      } else {
        amqp_queue_unbind(p, kChannel, Bytes(queue_name_), Bytes(options_.exchange), Bytes(key),
                          amqp_empty_table);
      }
      if (absl::Status status = Check(p, bind ? "queue.bind" : "queue.unbind"); !status.ok()) {
        // The counts are right; the reconnect binds what is counted and
        // unbinds what is pending.
        SHARDMQ_LOG(kWarning, "cluster: %s", status.message());
        ok = false;
      } else if (!bind) {
        unbind_pending_.erase(key);
      }
    }
  }
  bindings_.store(key_counts_.size(), std::memory_order_relaxed);
  shared_queues_.store(shared_.size(), std::memory_order_relaxed);
  for (absl::AnyInvocable<void()>& done : bound) done();
  return ok;
}

bool AmqpLink::PublishBatch() {
  std::vector<Outgoing> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!buffer_.empty() && batch.size() < kPublishBatch) {
      if (buffer_.front().qos == 0) --buffered_qos0_;
      batch.push_back(std::move(buffer_.front()));
      buffer_.pop_front();
    }
  }
  if (batch.empty()) return true;
  amqp_connection_state_t p = publisher_->state();
  bool ok = true;
  size_t sent = 0;
  for (const Outgoing& out : batch) {
    amqp_basic_properties_t props;
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_APP_ID_FLAG;
    // QoS 0 promises nothing across a RabbitMQ restart; QoS 1/2 are kept.
    props.delivery_mode = out.qos > 0 ? 2 : 1;
    props.app_id = Bytes(options_.node_id);
    if (out.shared_only) {
      props._flags |= AMQP_BASIC_TYPE_FLAG;
      props.type = Bytes(kSharedOnlyType);
    }
    if (amqp_basic_publish(p, kChannel, Bytes(options_.exchange), Bytes(out.routing_key), 0, 0,
                           &props, Bytes(out.body)) != AMQP_STATUS_OK) {
      ok = false;
      break;
    }
    ++sent;
  }
  // Confirms. Tags count the channel's publishes from 1; this batch's are
  // [first, first + sent). RabbitMQ confirms each once, alone or with all
  // below it ("multiple"), so mark them off exactly.
  const uint64_t first = next_tag_;
  next_tag_ += sent;
  std::vector<bool> confirmed(sent, false);
  size_t left = sent;
  uint64_t scan = first;
  auto mark = [&](uint64_t tag) {
    if (tag < first || tag >= first + sent || confirmed[tag - first]) return;
    confirmed[tag - first] = true;
    --left;
  };
  while (ok && left > 0) {
    amqp_frame_t frame;
    timeval timeout = kRpcTimeout;
    amqp_maybe_release_buffers(p);
    int status = amqp_simple_wait_frame_noblock(p, &frame, &timeout);
    if (status != AMQP_STATUS_OK) {
      SHARDMQ_LOG(kWarning, "cluster: waiting for publisher confirms: %s",
                  amqp_error_string2(status));
      ok = false;
      break;
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
      if (ack->multiple) {
        // Tags below `scan` were covered by an earlier "multiple".
        const uint64_t upto = std::min<uint64_t>(ack->delivery_tag, first + sent - 1);
        for (; scan <= upto; ++scan) mark(scan);
      } else {
        mark(ack->delivery_tag);
      }
      continue;
    }
    SHARDMQ_LOG(kWarning, "cluster: unexpected method 0x%08x while waiting for confirms",
                frame.payload.method.id);
    ok = false;  // a nack or a close: publish again on a fresh channel
  }
  ok = ok && sent == batch.size();
  if (ok) {
    published_.fetch_add(batch.size(), std::memory_order_relaxed);
    return true;
  }
  // Back to the front, in order: published again after the reconnect
  // (duplicates possible: at least once).
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
      if (it->qos == 0) ++buffered_qos0_;
      buffer_.push_front(std::move(*it));
    }
  }
  return false;
}

bool AmqpLink::ConsumeSome(int wait_ms) {
  amqp_connection_state_t c = consumer_->state();
  if (wait_ms > 0 && !amqp_frames_enqueued(c) && !amqp_data_in_buffer(c)) {
    pollfd fds[2] = {{amqp_get_sockfd(c), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    poll(fds, 2, wait_ms);
    uint64_t drained;
    [[maybe_unused]] ssize_t n = read(wake_fd_, &drained, sizeof(drained));
  }
  // One ack ("multiple") for every message taken in this call: they were
  // all handed to the shards before it is sent.
  uint64_t ack_upto = 0;
  auto flush_acks = [&] {
    if (ack_upto == 0) return true;
    const bool sent = amqp_basic_ack(c, kChannel, ack_upto, /*multiple=*/1) == AMQP_STATUS_OK;
    ack_upto = 0;
    return sent;
  };
  for (int i = 0; i < kPrefetch; ++i) {
    if (i > 0 && !amqp_frames_enqueued(c) && !amqp_data_in_buffer(c)) {
      // Nothing buffered: look at the socket once more without waiting.
      pollfd fd = {amqp_get_sockfd(c), POLLIN, 0};
      if (poll(&fd, 1, 0) <= 0) break;
    }
    amqp_maybe_release_buffers(c);
    amqp_envelope_t envelope;
    timeval no_wait = {0, 0};
    amqp_rpc_reply_t reply = amqp_consume_message(c, &envelope, &no_wait, 0);
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        reply.library_error == AMQP_STATUS_TIMEOUT) {
      break;
    }
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
      SHARDMQ_LOG(kWarning, "cluster: consuming %s: %s", queue_name_, Describe(reply));
      flush_acks();
      return false;
    }
    const amqp_basic_properties_t& props = envelope.message.properties;
    const uint64_t tag = envelope.delivery_tag;
    const std::string_view consumer_tag = View(envelope.consumer_tag);
    bool taken = true;
    if (consumer_tag == kNodeConsumerTag) {
      const bool own =
          (props._flags & AMQP_BASIC_APP_ID_FLAG) != 0 && View(props.app_id) == options_.node_id;
      // A retained message's copy for the shared queues, in the node's
      // queue through a binding the two share: the "r" copy is the node's.
      const bool shared_only =
          (props._flags & AMQP_BASIC_TYPE_FLAG) != 0 && View(props.type) == kSharedOnlyType;
      if (own) {
        own_skipped_.fetch_add(1, std::memory_order_relaxed);
      } else if (!shared_only) {
        taken = deliver_(View(envelope.message.body), nullptr);
        if (taken) consumed_.fetch_add(1, std::memory_order_relaxed);
      }
    } else if (auto it = shared_.find(absl::string_view(consumer_tag.data(), consumer_tag.size()));
               it != shared_.end()) {
      // From any node, this one too: the group's copy.
      const SharedSource source{it->second.group, it->second.filter};
      taken = deliver_(View(envelope.message.body), &source);
      if (taken) shared_consumed_.fetch_add(1, std::memory_order_relaxed);
    } else {
      // A shared queue's consumer cancelled (its last member here left)
      // while this was on its way: back to the queue, for the other nodes.
      amqp_destroy_envelope(&envelope);
      if (!flush_acks() ||
          amqp_basic_nack(c, kChannel, tag, /*multiple=*/0, /*requeue=*/1) != AMQP_STATUS_OK) {
        return false;
      }
      continue;
    }
    amqp_destroy_envelope(&envelope);
    if (!taken) {
      // The broker is stopping. Left unacked, this message (and any after
      // it) goes back to the queue when the connection closes.
      flush_acks();
      return false;
    }
    ack_upto = tag;
  }
  return flush_acks();
}

void AmqpLink::Run() {
  int64_t backoff_ms = 100;
  bool ever_connected = false;
  while (running_.load(std::memory_order_relaxed)) {
    if (publisher_ == nullptr) {
      // Counts stay right while disconnected; bindings follow on connect.
      ApplyInterest();
      if (ConnectAll()) {
        if (ever_connected) reconnects_.fetch_add(1, std::memory_order_relaxed);
        SHARDMQ_LOG(kInfo, "cluster: connected to RabbitMQ, queue %s, %u binding keys", queue_name_,
                    key_counts_.size());
        ever_connected = true;
        backoff_ms = 100;
        connected_.store(true, std::memory_order_relaxed);
        bindings_.store(key_counts_.size(), std::memory_order_relaxed);
      } else {
        DisconnectAll();
        pollfd fd = {wake_fd_, POLLIN, 0};
        poll(&fd, 1, static_cast<int>(backoff_ms));
        uint64_t drained;
        [[maybe_unused]] ssize_t n = read(wake_fd_, &drained, sizeof(drained));
        backoff_ms = std::min<int64_t>(backoff_ms * 2, 5000);
        continue;
      }
    }
    bool idle;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      idle = buffer_.empty() && interest_.empty();
      // Writers wake us only while we sleep (or are about to).
      sleeping_ = idle;
    }
    bool ok = ApplyInterest() && PublishBatch() && ConsumeSome(idle ? 200 : 0);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      sleeping_ = false;
    }
    if (!ok) {
      SHARDMQ_LOG(kWarning, "cluster: lost RabbitMQ; serving locally, %u messages buffered", [&] {
        std::lock_guard<std::mutex> lock(mutex_);
        return buffer_.size();
      }());
      DisconnectAll();
    }
  }
  DisconnectAll();
  const AmqpLinkStats stats = Stats();
  size_t left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    left = buffer_.size();
  }
  SHARDMQ_LOG(kInfo,
              "cluster: stopped; %u messages published, %u consumed (%u from shared queues), %u "
              "own skipped, %u reconnects, dropped %u QoS 0 and %u QoS 1/2, %u left unsent",
              stats.published, stats.consumed, stats.shared_consumed, stats.own_skipped,
              stats.reconnects, stats.dropped_qos0, stats.dropped_qos12, left);
}

}  // namespace shardmq::cluster
