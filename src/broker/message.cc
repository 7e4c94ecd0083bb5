#include "broker/message.h"

namespace shardmq::broker {

Message* Message::Make(const Fields& fields) {
  auto* message = new Message();
  message->storage_.reserve(fields.topic.size() + fields.payload.size() + fields.publisher.size());
  message->storage_.append(fields.topic);
  message->storage_.append(reinterpret_cast<const char*>(fields.payload.data()),
                           fields.payload.size());
  message->storage_.append(fields.publisher);
  message->topic_size_ = static_cast<uint32_t>(fields.topic.size());
  message->payload_size_ = static_cast<uint32_t>(fields.payload.size());
  message->qos_ = fields.qos;
  message->retain_ = fields.retain;
  return message;
}

}  // namespace shardmq::broker
