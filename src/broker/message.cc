#include "broker/message.h"

#include <cstring>
#include <new>

namespace shardmq::broker {
namespace {

// Bytes of the strings a kept property block points at.
size_t KeptPropertyBytes(const mqtt::Properties& p) {
  size_t bytes = 0;
  if (p.content_type) bytes += p.content_type->size();
  if (p.response_topic) bytes += p.response_topic->size();
  if (p.correlation_data) bytes += p.correlation_data->size();
  for (const auto& [name, value] : p.user_properties) bytes += name.size() + value.size();
  return bytes;
}

// Copies `text` to *out and returns the copy's view.
std::string_view CopyTo(std::string_view text, char** out) {
  if (text.empty()) return std::string_view(*out, 0);
  std::memcpy(*out, text.data(), text.size());
  std::string_view copy(*out, text.size());
  *out += text.size();
  return copy;
}

}  // namespace

size_t Message::AllocationSize(const Fields& fields) {
  // One allocation per message: the object, its kept properties (rare), then
  // topic, payload, publisher and the properties' strings.
  const mqtt::Properties* in = fields.properties;
  const bool keep_properties = in != nullptr && KeepsAnyOf(*in);
  static_assert(sizeof(Message) % alignof(mqtt::Properties) == 0);
  return sizeof(Message) +
         (keep_properties ? sizeof(mqtt::Properties) + KeptPropertyBytes(*in) : 0) +
         fields.topic.size() + fields.payload.size() + fields.publisher.size();
}

Message* Message::Make(const Fields& fields, shard::Clock::time_point now) {
  return MakeAt(::operator new(AllocationSize(fields)), fields, now);
}

void* Message::Reclaim(MessageRef message) {
  if (!message->IsSoleOwner()) return nullptr;  // (the MessageRef drops ours)
  const Message* last = message.Release();
  last->~Message();
  return const_cast<Message*>(last);
}

Message* Message::MakeAt(void* memory, const Fields& fields, shard::Clock::time_point now) {
  const mqtt::Properties* in = fields.properties;
  const bool keep_properties = in != nullptr && KeepsAnyOf(*in);
  auto* message = ::new (memory) Message();
  if (keep_properties) message->properties_ = ::new (message + 1) mqtt::Properties();
  char* out = const_cast<char*>(message->data());
  CopyTo(fields.topic, &out);
  CopyTo(
      std::string_view(reinterpret_cast<const char*>(fields.payload.data()), fields.payload.size()),
      &out);
  CopyTo(fields.publisher, &out);
  if (keep_properties) {
    mqtt::Properties& kept = *message->properties_;
    kept.payload_format_indicator = in->payload_format_indicator;
    if (in->content_type) kept.content_type = CopyTo(*in->content_type, &out);
    if (in->response_topic) kept.response_topic = CopyTo(*in->response_topic, &out);
    if (in->correlation_data) {
      std::string_view copy =
          CopyTo(std::string_view(reinterpret_cast<const char*>(in->correlation_data->data()),
                                  in->correlation_data->size()),
                 &out);
      kept.correlation_data =
          absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(copy.data()), copy.size());
    }
    for (const auto& [name, value] : in->user_properties) {
      std::string_view name_copy = CopyTo(name, &out);
      kept.user_properties.emplace_back(name_copy, CopyTo(value, &out));
    }
  }
  if (in != nullptr && in->message_expiry_interval.has_value()) {
    message->has_expiry_ = true;
    message->expires_at_ = now + std::chrono::seconds(*in->message_expiry_interval);
  }
  message->topic_size_ = static_cast<uint32_t>(fields.topic.size());
  message->origin_ = fields.origin;
  message->payload_size_ = static_cast<uint32_t>(fields.payload.size());
  message->publisher_size_ = static_cast<uint32_t>(fields.publisher.size());
  message->qos_ = fields.qos;
  message->retain_ = fields.retain;
  return message;
}

Message::~Message() {
  // User properties beyond two live in a heap block the Properties owns.
  if (properties_ != nullptr) properties_->~Properties();
}

uint32_t Message::RemainingExpirySeconds(shard::Clock::time_point now) const {
  if (now >= expires_at_) return 0;
  // Rounded up: a message with 0.4 s left still has a whole second to live,
  // and 0 would read as "expired" to the next hop.
  auto left = std::chrono::ceil<std::chrono::seconds>(expires_at_ - now).count();
  return left > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(left);
}

}  // namespace shardmq::broker
