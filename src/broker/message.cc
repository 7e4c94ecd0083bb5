#include "broker/message.h"

#include <cstring>
#include <new>

namespace shardmq::broker {

Message* Message::Make(const Fields& fields) {
  // One allocation per message: the object, then topic, payload and publisher.
  const size_t bytes = fields.topic.size() + fields.payload.size() + fields.publisher.size();
  void* memory = ::operator new(sizeof(Message) + bytes);
  auto* message = ::new (memory) Message();
  char* out = reinterpret_cast<char*>(message + 1);
  if (!fields.topic.empty()) std::memcpy(out, fields.topic.data(), fields.topic.size());
  out += fields.topic.size();
  if (!fields.payload.empty()) std::memcpy(out, fields.payload.data(), fields.payload.size());
  out += fields.payload.size();
  if (!fields.publisher.empty()) {
    std::memcpy(out, fields.publisher.data(), fields.publisher.size());
  }
  message->topic_size_ = static_cast<uint32_t>(fields.topic.size());
  message->payload_size_ = static_cast<uint32_t>(fields.payload.size());
  message->publisher_size_ = static_cast<uint32_t>(fields.publisher.size());
  message->qos_ = fields.qos;
  message->retain_ = fields.retain;
  return message;
}

}  // namespace shardmq::broker
