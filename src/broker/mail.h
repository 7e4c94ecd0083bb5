// What shards tell each other through their mailboxes (shard::MailItem kinds)
// and who owns what an item points at.
//
// Ownership: `ptr` always carries one reference or one heap object that the
// receiving shard releases (mimalloc frees cross-thread allocations safely).
// Items from one shard to another arrive in the order they were posted, which
// is what keeps one publisher's messages in order across shards.
#pragma once

#include <cstdint>
#include <string>

#include "broker/message.h"
#include "mqtt/packet.h"
#include "shard/types.h"

namespace shardmq::broker {

enum MailKind : uint32_t {
  // ptr: const Message* with one reference. Match it against local
  // subscribers only (the sender already chose the shards that need it).
  // arg: the topic's route cache hash (delivery.cc), or 0.
  kMailPublish = 1,
  // ptr: const Message* with one reference. A retained message to store (or,
  // with an empty payload, to delete) in this shard's copy of the index.
  kMailRetain = 2,
  // ptr: InterestChange*. The sender's count of local subscribers for a filter
  // went 0 -> 1 (add) or 1 -> 0 (remove). An add is answered with
  // kMailInterestAck carrying `token`, so the subscriber's SUBACK waits until
  // every shard will forward matching publishes.
  kMailInterestAdd = 3,
  kMailInterestRemove = 4,
  // arg: the token of the kMailInterestAdd being acknowledged.
  kMailInterestAck = 5,
  // ptr: std::string* (a client id) the receiver deletes. Sent to the client
  // id's home shard: a subscriber's queue went over its high watermark with
  // this client's messages (pause reading it), or drained again (resume).
  // Every pause is followed by exactly one resume from the same sender.
  kMailPausePublisher = 6,
  kMailResumePublisher = 7,
  // ptr: SharedDelivery*. The sender chose this shard to give the message to
  // one local member of a shared group; if it has none any more, the message
  // goes on to another shard that has (at most shard-count hops).
  kMailSharedPublish = 8,
  // ptr: SharedCount*. The sender's number of local members of a shared
  // group changed; the receiver weights its choice of shard by these counts
  // so every member, on any shard, gets a fair share.
  kMailSharedCount = 9,
  // arg: a token. --durability=sync: sent after a PUBLISH's mail (kMailPublish,
  // kMailRetain to the topic's owner, kMailSharedPublish) to every shard that
  // may have logged records for it; the receiver answers kMailDurableAck with
  // the same token once everything it appended before is on disk (aux 1) or
  // its log failed (aux 0), and the publisher's shard acknowledges the
  // PUBLISH once every answer is in.
  kMailDurableBarrier = 10,
  kMailDurableAck = 11,
  // arg: a message's origin (Message::origin). The publisher's shard has
  // committed that QoS 2 message (durable_acks.cc): copies held for it may
  // go to their subscribers now.
  kMailCommitted = 12,
  // ptr: PublishBatch* (publish_batch.h). Plain QoS 0 messages that only
  // other shards wanted, copied back to back; each goes to this shard's
  // matching subscribers like a kMailPublish. The receiver gives the batch
  // back with kMailPublishBatchDone.
  kMailPublishBatch = 13,
  // ptr: PublishBatch*, delivered, back to the shard that filled it to be
  // filled again: the sender keeps a few spare batches instead of asking
  // the allocator for one and freeing it across threads every time.
  kMailPublishBatchDone = 14,
};

struct SharedDelivery {
  const Message* message = nullptr;  // one reference, adopted by the receiver
  std::string group;                 // "$share/{group}/{filter}"
  int hops = 0;
};

struct SharedCount {
  std::string group;  // "$share/{group}/{filter}"
  uint32_t members = 0;
};

struct InterestChange {
  std::string filter;
  uint64_t token = 0;
};

}  // namespace shardmq::broker
