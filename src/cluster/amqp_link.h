// AmqpLink: one node's connection to RabbitMQ, on a thread of its own.
//
// What it keeps on the broker (see README "Cluster"):
//   - one durable topic exchange (AmqpLinkOptions::exchange) shared by all
//     nodes, and one durable queue per node, "shardmq.node.<node id>";
//   - the node's queue bound with the binding keys (amqp_keys.h) of every
//     filter that has a subscriber on the node, plus "r" (retained messages
//     go to every node, so each node's retained store has the same set);
//   - messages published persistently (QoS 1/2; QoS 0 transiently) with
//     publisher confirms, tagged with the node id (app_id) so the node drops
//     its own messages when they come back through its queue;
//   - its queue consumed with manual acks: a message is acked once Deliver
//     (the broker's callback) took it, i.e. it was handed to a shard;
//   - per shared subscription ($share/{group}/{filter}) with a member on the
//     node, one durable queue shared by all nodes, SharedQueueName(group,
//     filter), declared with x-expires (kSharedQueueExpiresMs: a group nobody
//     consumes any more disappears), bound with the filter's binding keys and
//     consumed (manual acks) while the node has members. RabbitMQ hands each
//     message of that queue to one of the consuming nodes (round robin), so
//     each message reaches one node, which gives it to one local member.
//     When the node's last member leaves, the consumer is cancelled; the
//     queue stays bound for the other nodes; deliveries of its consumer that
//     were already on their way are nacked back to the queue. Deliveries
//     from a shared queue are never dropped as the node's own: the node's
//     publishes reach its shared members only through these queues;
//   - a retained message is published twice: with key "r" (every node's
//     queue: every node's retained store) and, typed kSharedOnlyType, with
//     its topic's key (the shared queues; a node's queue bound to the same
//     key acks and skips that copy).
//
// Threads. Shards call Publish, FilterAdded/FilterRemoved and
// SharedAdded/SharedRemoved; they never block on the network: those take a
// std::mutex for a push onto a deque and write an eventfd when the link
// sleeps. Publish is bounded (max_buffered AMQP messages, a retained message
// counting as two): the same buffer holds what waits while RabbitMQ is away.
// Over the bound, QoS 0 messages go first (the new one if it is QoS 0, else
// the oldest buffered QoS 0), and a QoS 1/2 message is dropped only when no
// QoS 0 is left; every drop is counted and logged (throttled). Interest events are
// never dropped (they are bounded by the number of distinct filters).
//
// The link thread owns the two AMQP connections (one publishes and binds,
// one consumes, so confirms and deliveries never interleave on a socket). If
// either fails it closes both, waits with exponential back-off (100 ms up to
// 5 s), reconnects, redeclares the exchange and queue and rebinds every key
// it holds, and redeclares, rebinds and consumes again every shared queue
// it has members for. A batch whose confirms did not come back is published
// again: delivery across nodes is at least once.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cluster/amqp_keys.h"

namespace shardmq::cluster {

struct AmqpLinkOptions {
  // amqp://user:pass@host:port/vhost
  std::string url;
  // Names the node's queue; must be unique among the nodes.
  std::string node_id;
  std::string exchange = "shardmq";
  // Outgoing messages held while RabbitMQ is slow or away.
  size_t max_buffered = 100000;
};

// Counters, any thread (relaxed).
struct AmqpLinkStats {
  uint64_t published = 0;        // confirmed by RabbitMQ
  uint64_t consumed = 0;         // delivered from the node's queue to the shards
  uint64_t shared_consumed = 0;  // delivered from shared queues to the shards
  uint64_t shared_queues = 0;    // shared queues the node consumes (or will)
  uint64_t own_skipped = 0;      // this node's own messages coming back
  uint64_t dropped_qos0 = 0;     // buffer full
  uint64_t dropped_qos12 = 0;
  uint64_t reconnects = 0;
  uint64_t bindings = 0;  // binding keys currently bound (or to rebind)
  uint64_t buffered = 0;  // waiting to be published
  bool connected = false;
};

// How long RabbitMQ keeps a shared queue nobody consumes (x-expires).
inline constexpr int kSharedQueueExpiresMs = 10 * 60 * 1000;
// The AMQP `type` of a retained message's copy for the shared queues.
inline constexpr std::string_view kSharedOnlyType = "shardmq.shared-only";

// Where a delivery came from: a shared queue's group and filter.
struct SharedSource {
  std::string_view group;
  std::string_view filter;
};

class AmqpLink {
 public:
  // Link thread: a message from another node, or from any node (this one
  // too) through a shared queue (the body as published). `shared` is null
  // for the node's own queue, else the shared subscription whose queue it
  // came from: it is for one member of that group. Returns true when it was
  // handed to the shards (the link then acks it); false leaves it unacked
  // (requeued by RabbitMQ when the link reconnects).
  using Deliver = absl::AnyInvocable<bool(std::string_view body, const SharedSource* shared)>;

  // Checks the options (an unparsable URL, an empty node id). Starts nothing.
  static absl::StatusOr<std::unique_ptr<AmqpLink>> Create(AmqpLinkOptions options, Deliver deliver);
  ~AmqpLink();  // Stop()s

  // Starts the thread; the first connection is made there (a RabbitMQ that
  // is not up yet is retried like a lost one).
  void Start();
  // Stops the thread and closes the connections; buffered messages are lost.
  void Stop();

  // Any thread, never blocks on the network. `topic` is the MQTT topic name
  // (it picks the routing key); `body` what Deliver gets on the other nodes.
  // A retained message goes to every node.
  // Returns true while RabbitMQ is connected and the buffer is over half
  // its bound: the caller should slow its publishers down (PastCongestion
  // says when to let them go on) rather than have the buffer overflow.
  bool Publish(std::string_view topic, bool retain, uint8_t qos, std::string body);
  // Any thread: the buffer is back under a quarter of its bound, or
  // RabbitMQ is away (then the buffer holds what it can and drops the rest:
  // the node serves its own clients meanwhile).
  bool PastCongestion() const;
  // A filter's subscriber count on one shard went 0->1 / 1->0. The link
  // keeps the node-wide count and binds on 0->1, unbinds on 1->0.
  // Not for shared subscriptions: they use SharedAdded/SharedRemoved.
  // `bound`, when given, is called once the filter's bindings are in place
  // on RabbitMQ (or were already), so that a SUBACK can wait for them: on
  // the link thread, or at once on the caller's when RabbitMQ is not
  // connected (then the bindings follow at the reconnect).
  void FilterAdded(std::string_view filter, absl::AnyInvocable<void()> bound = nullptr);
  void FilterRemoved(std::string_view filter);
  // A shared subscription's ("$share/{group}/{filter}") member count on one
  // shard went 0->1 / 1->0. The link keeps the node-wide count; on 0->1 it
  // declares and binds the group's shared queue and consumes it, on 1->0 it
  // cancels that consumer (the queue stays, bound, for the other nodes).
  void SharedAdded(std::string_view group, std::string_view filter);
  void SharedRemoved(std::string_view group, std::string_view filter);

  AmqpLinkStats Stats() const;
  const AmqpLinkOptions& options() const { return options_; }

 private:
  struct Outgoing {
    std::string routing_key;
    std::string body;
    uint8_t qos = 0;
    bool shared_only = false;  // typed kSharedOnlyType
  };
  struct InterestEvent {
    std::string filter;
    std::string group;  // a shared subscription's (shared)
    bool added = false;
    bool shared = false;
    absl::AnyInvocable<void()> bound;  // FilterAdded's
  };
  // A shared subscription the node has members of, keyed by its queue's
  // name (also the consumer's tag).
  struct SharedQueue {
    std::string group;
    std::string filter;
    int count = 0;           // shards with members
    bool consuming = false;  // basic.consume done on the current connection
  };
  class Connection;  // amqp_link.cc: one rabbitmq-c connection

  AmqpLink(AmqpLinkOptions options, Deliver deliver);
  void Run();
  void Wake();
  // Link thread. Applies queued interest events to the counts; (un)binds
  // when connected. False when an AMQP call failed.
  bool ApplyInterest();
  // Link thread, connected: declares, binds and consumes a shared queue.
  absl::Status StartShared(const std::string& name, SharedQueue& queue);
  void PushInterest(InterestEvent event);
  // With mutex_ held: buffers one message, or counts a drop.
  void PushLocked(Outgoing out, bool& dropped, uint8_t& dropped_qos);
  bool ConnectAll();
  void DisconnectAll();
  // Publishes up to a batch and waits for its confirms; false on failure
  // (the batch is back at the front of the buffer).
  bool PublishBatch();
  // Consumes what is there (waiting up to `wait_ms`); false on failure.
  bool ConsumeSome(int wait_ms);
  void NoteDrop(uint8_t qos);

  const AmqpLinkOptions options_;
  Deliver deliver_;
  std::string queue_name_;
  int wake_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> running_{false};

  mutable std::mutex mutex_;
  std::deque<Outgoing> buffer_;         // guarded by mutex_
  size_t buffered_qos0_ = 0;            // guarded by mutex_
  std::deque<InterestEvent> interest_;  // guarded by mutex_
  bool sleeping_ = false;               // guarded by mutex_

  // Link thread only.
  absl::flat_hash_map<std::string, int> filter_counts_;
  absl::flat_hash_map<std::string, int> key_counts_;
  // Keys whose count went to 0 and whose unbind has not reached RabbitMQ.
  absl::flat_hash_set<std::string> unbind_pending_;
  absl::flat_hash_map<std::string, SharedQueue> shared_;
  std::unique_ptr<Connection> publisher_;
  std::unique_ptr<Connection> consumer_;
  // The publisher channel's next delivery tag (publisher confirms).
  uint64_t next_tag_ = 1;

  std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> consumed_{0};
  std::atomic<uint64_t> shared_consumed_{0};
  std::atomic<uint64_t> shared_queues_{0};
  std::atomic<uint64_t> own_skipped_{0};
  std::atomic<uint64_t> dropped_qos0_{0};
  std::atomic<uint64_t> dropped_qos12_{0};
  std::atomic<uint64_t> reconnects_{0};
  std::atomic<uint64_t> bindings_{0};
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> last_drop_log_ns_{0};
};

}  // namespace shardmq::cluster
