#include "broker/publish_batch.h"

#include <new>

namespace shardmq::broker {

static_assert(sizeof(PublishBatch) == 16);

PublishBatch* PublishBatch::Create() {
  return ::new (::operator new(sizeof(PublishBatch) + kCapacity)) PublishBatch();
}

void PublishBatch::Destroy(PublishBatch* batch) {
  batch->~PublishBatch();
  ::operator delete(batch);
}

bool PublishBatch::Append(const Message::Fields& fields, uint64_t route_hash) {
  const size_t text = fields.topic.size() + fields.payload.size() + fields.publisher.size();
  const size_t size = EntrySize(text);
  if (count_ == kMaxMessages || used_ + size > kCapacity) return false;
  char* p = bytes() + used_;
  // Field by field in place: an Entry built on the stack and copied would be
  // reloaded with wide loads that stall on store forwarding (perf put half
  // of Append's time there). Entries start 8-byte aligned.
  auto* entry = ::new (p) Entry;
  entry->route_hash = route_hash;
  entry->topic_size = static_cast<uint32_t>(fields.topic.size());
  entry->payload_size = static_cast<uint32_t>(fields.payload.size());
  entry->publisher_size = static_cast<uint16_t>(fields.publisher.size());
  entry->qos = fields.qos;
  p += sizeof(Entry);
  std::memcpy(p, fields.topic.data(), fields.topic.size());
  p += fields.topic.size();
  if (!fields.payload.empty()) std::memcpy(p, fields.payload.data(), fields.payload.size());
  p += fields.payload.size();
  if (!fields.publisher.empty()) std::memcpy(p, fields.publisher.data(), fields.publisher.size());
  used_ += static_cast<uint32_t>(size);
  ++count_;
  return true;
}

}  // namespace shardmq::broker
