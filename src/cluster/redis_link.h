// RedisLink: one node's connection to Redis, the state all nodes share
// (README "Cluster"). Like AmqpLink it knows nothing of MQTT: the broker
// hands it client ids, field names and opaque values and gets them back.
//
// What it keeps in Redis (every key starts with RedisLinkOptions::prefix,
// "shardmq:" by default):
//   node:<node>      "1" with a TTL of 2/3 lease, refreshed every lease/3:
//                    the node is alive while the key exists
//   nodes            set of node ids that have ever joined (for adoption)
//   owner:<client>   the node that owns the client id's session now
//   owned:<node>     set of the client ids the node owns
//   s:<client>       hash: the session's state (fields chosen by the broker:
//                    settings, one per subscription, the offline time)
//   q:<client>       list: messages queued for the session while it is
//                    parked (offline), oldest first
//   inbox:<node>     list: requests and answers between nodes (see below)
//   retained         hash: topic -> the retained message's body
//   adopt:<node>     lock (SET NX with a TTL of one lease) taken by the node
//                    that adopts a dead node's sessions
//
// Ownership (the client-id registry). A CONNECT on node B claims its id
// (Claim): owner:<id> becomes B. If the id was owned by another node A that
// is alive, B asks A to let the session go (a "takeover" request in A's
// inbox) and waits up to one lease for A's "released" answer; A closes its
// connection, moves what it held for the session into q:<id> and answers.
// Then B reads s:<id> and q:<id> (emptying q:<id>) and reports the Claim.
// Every step that reads or writes on condition is one Lua script, so two
// nodes racing for one id cannot both win: the loser's Claim reports
// `won = false`.
//
// Dead nodes. Every lease/4 the link looks for members of `nodes` whose
// node:<id> key is gone; the first node to take adopt:<id> adopts each
// session the dead node owned (owner and owned move to it, Adopted is
// called with the session's hash) and removes the dead node from `nodes`.
// So no ownership outlives its node by more than 11/12 of a lease. A node
// that starts adopts what its own id still owns from an earlier run.
//
// Threads. Shards call everything below from their own threads; nothing
// blocks on the network: calls push a command onto a FIFO (std::mutex) and
// wake the link. Commands run on one connection in the order they were
// made, so a message queued for a session before its Released reaches
// Redis before the other node reads the queue. A second connection on a
// second thread waits on the node's inbox (BLPOP). If Redis goes away both
// reconnect with back-off (100 ms up to 5 s); commands wait in the FIFO
// meanwhile, bounded by max_buffered (over it the oldest Push is dropped,
// counted and logged; ownership and session commands are never dropped).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shardmq::cluster {

struct RedisLinkOptions {
  // redis://[:password@]host:port[/db]
  std::string url;
  std::string node_id;
  std::string prefix = "shardmq:";
  // How long a node that stops answering keeps what it owns.
  std::chrono::milliseconds lease{10000};
  // Commands held while Redis is away (queued-message pushes count).
  size_t max_buffered = 100000;
};

struct RedisLinkStats {
  uint64_t commands = 0;  // run against Redis
  uint64_t claims = 0;    // Claim reports
  uint64_t takeovers_sent = 0;
  uint64_t takeovers_received = 0;
  uint64_t takeover_timeouts = 0;  // the old owner never answered
  uint64_t adopted = 0;            // sessions taken from dead nodes
  uint64_t dropped_pushes = 0;
  uint64_t reconnects = 0;
  uint64_t buffered = 0;
  bool connected = false;
};

// A session's state as read from Redis.
struct SessionState {
  std::vector<std::pair<std::string, std::string>> fields;  // s:<client>
  std::vector<std::string> queued;                          // q:<client>, oldest first
};

struct ClaimResult {
  std::string client_id;
  uint64_t token = 0;  // the caller's, from Claim
  // False: another node claimed the id at the same time and won.
  bool won = true;
  // The node that owned the id before (empty: none; may be this node).
  std::string previous_owner;
  // s:<client> was not empty.
  bool found = false;
  SessionState state;
};

class RedisLink {
 public:
  struct Events {
    // All called on the link's threads; they must not block for long.
    absl::AnyInvocable<void(ClaimResult)> claimed;
    // Another node claimed a session this node owns: let it go, then call
    // Released(client_id, by_node, token).
    absl::AnyInvocable<void(std::string client_id, std::string by_node, uint64_t token)>
        takeover_requested;
    // A dead node's session (or one this node owned before it restarted) is
    // this node's now: s:<client>'s fields (its queue stays in Redis).
    absl::AnyInvocable<void(std::string client_id, SessionState state)> adopted;
  };

  // Checks the options (an unparsable URL, an empty node id). Starts nothing.
  static absl::StatusOr<std::unique_ptr<RedisLink>> Create(RedisLinkOptions options, Events events);
  ~RedisLink();  // Stop()s

  // Blocking, before Start: connects once and reads the whole `retained`
  // hash (HSCAN). An error when Redis cannot be reached within `timeout`.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> LoadRetained(
      std::chrono::milliseconds timeout);

  // Starts the threads: registers the node (nodes, node:<id>), adopts what
  // its id still owns, then serves commands.
  void Start();
  // Stops the threads. The node's key is deleted, so other nodes adopt its
  // sessions at their next check (a clean stop does not wait out a lease).
  void Stop();
  // For tests only: stops the threads like a crashed node, leaving node:<id>
  // to expire after its lease (Stop deletes it) and running nothing more
  // from the FIFO, so other nodes' adoption of a dead node can be tested.
  void AbandonForTest();

  // --- Any thread, never blocks. ---

  // Makes this node the owner of `client_id` (see the file comment); the
  // answer comes through Events::claimed with `token`.
  void Claim(std::string_view client_id, uint64_t token);
  // Reads s:<client> and empties q:<client> if this node owns the id, and
  // reports it through Events::claimed like a Claim whose previous owner is
  // this node (won = false when another node owns it now). For what the old
  // owner forwarded after a takeover (BrokerShard's hand-off grace).
  void Drain(std::string_view client_id, uint64_t token);
  // Answers a takeover: the session's queue is in q:<client> (pushed before
  // this call), the node no longer owns it.
  void Released(std::string_view client_id, std::string_view to_node, uint64_t token);
  // HSET / HDEL one field of s:<client>, only while this node owns it.
  void SetField(std::string_view client_id, std::string_view field, std::string value);
  void DeleteField(std::string_view client_id, std::string_view field);
  // Empties s:<client> and q:<client> (a clean start), keeps the ownership.
  void ResetSession(std::string_view client_id);
  // RPUSH onto q:<client>; the list is trimmed to its newest `max_length`.
  void Push(std::string_view client_id, std::string value, size_t max_length);
  // The session ended: deletes s:, q: and the ownership, if this node owns it.
  void Forget(std::string_view client_id);
  // HSET / HDEL retained.
  void SetRetained(std::string_view topic, std::string body);
  void ClearRetained(std::string_view topic);

  RedisLinkStats Stats() const;
  const RedisLinkOptions& options() const { return options_; }

 private:
  class Impl;  // redis_link.cc
  RedisLink(RedisLinkOptions options, Events events);

  const RedisLinkOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardmq::cluster
