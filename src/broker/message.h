// An application message as it travels through the broker: built once when a
// PUBLISH arrives, immutable afterwards, shared by reference with every
// subscriber on every shard (DESIGN.md, "How a PUBLISH travels", step 4).
//
// Lifecycle: created by the shard that received the PUBLISH with one
// reference; every holder (a subscriber's queue, an in-flight slot, a pending
// send, a mailbox item, the retained index) owns one reference. The last
// Unref() frees it on whichever shard drops it (mimalloc handles the
// cross-thread free). Nothing mutates a Message after MakeMessage returns, so
// any shard may read it without synchronisation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/types/span.h"
#include "mqtt/properties.h"
#include "shard/timer_heap.h"
#include "shard/types.h"

namespace shardmq::broker {

class MessageRef;

class Message final : public shard::RefCounted {
 public:
  struct Fields {
    std::string_view topic;
    absl::Span<const uint8_t> payload;
    uint8_t qos = 0;
    bool retain = false;
    // The publishing client's id, for MQTT 5 no-local; empty for the broker.
    std::string_view publisher;
    // The PUBLISH's (or will's) MQTT 5 properties, or nullptr. Make keeps
    // the ones a subscriber receives unchanged [MQTT-3.3.2-4, -17, -18,
    // -20]: payload format, content type, response topic, correlation data,
    // user properties; and turns the Message Expiry Interval into a deadline.
    // Topic Alias and Subscription Identifiers belong to one hop and are
    // dropped.
    const mqtt::Properties* properties = nullptr;
    // --durability=sync: the number under which the publisher's shard
    // commits this QoS 2 message (durable_acks.cc); 0 for every other.
    uint64_t origin = 0;
  };

  // Copies topic, payload and the kept properties into one allocation owned
  // by the Message. `now` dates the expiry interval, if there is one.
  static Message* Make(const Fields& fields, shard::Clock::time_point now = {});
  // Make, into `memory` from ::operator new of at least AllocationSize(fields)
  // bytes, which the Message owns from then on (its last Unref frees it).
  static Message* MakeAt(void* memory, const Fields& fields, shard::Clock::time_point now = {});
  // The bytes Make allocates for `fields`.
  static size_t AllocationSize(const Fields& fields);
  // Given the last reference to a Message made by MakeAt, destroys it and
  // returns its memory to build the next one in (still the caller's to free).
  // Any other reference: drops it and returns nullptr.
  static void* Reclaim(MessageRef message);

  // Whether Make would keep any of `properties` (see Fields::properties).
  static bool KeepsAnyOf(const mqtt::Properties& p) {
    return p.payload_format_indicator || p.content_type || p.response_topic || p.correlation_data ||
           !p.user_properties.empty();
  }
  // Whether the Message made of `fields` is its bytes and flags alone: no
  // kept properties and no expiry.
  static bool IsPlain(const Fields& fields) {
    const mqtt::Properties* p = fields.properties;
    return p == nullptr || (!KeepsAnyOf(*p) && !p->message_expiry_interval.has_value());
  }

  std::string_view topic() const { return std::string_view(data(), topic_size_); }
  absl::Span<const uint8_t> payload() const {
    return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(data()) + topic_size_,
                                     payload_size_);
  }
  std::string_view publisher() const {
    return std::string_view(data() + topic_size_ + payload_size_, publisher_size_);
  }

  // Message and its bytes are one allocation (Make); `delete` frees it.
  static void operator delete(void* p) { ::operator delete(p); }

  uint8_t qos() const { return qos_; }
  // Fields::origin.
  uint64_t origin() const { return origin_; }
  bool retain() const { return retain_; }

  // The forwarded MQTT 5 properties (never Message Expiry Interval, Topic
  // Alias or Subscription Identifier), or nullptr when there are none, which
  // is the common case and costs nothing.
  const mqtt::Properties* properties() const { return properties_; }

  // Message Expiry Interval [MQTT-3.3.2-5, -6]: whether the message had one,
  // whether it has passed, and the whole seconds left to forward. An interval
  // of 0 reaches the subscribers online at that instant and nobody later.
  bool has_expiry() const { return has_expiry_; }
  bool Expired(shard::Clock::time_point now) const { return has_expiry_ && now > expires_at_; }
  uint32_t RemainingExpirySeconds(shard::Clock::time_point now) const;

 private:
  Message() = default;
  ~Message() override;

  // Topic, payload and publisher id follow the object (and its Properties,
  // if any) in the same allocation (Make).
  const char* data() const {
    return properties_ != nullptr ? reinterpret_cast<const char*>(properties_ + 1)
                                  : reinterpret_cast<const char*>(this + 1);
  }

  mqtt::Properties* properties_ = nullptr;
  shard::Clock::time_point expires_at_{};
  uint64_t origin_ = 0;
  uint32_t topic_size_ = 0;
  uint32_t payload_size_ = 0;
  uint32_t publisher_size_ = 0;
  uint8_t qos_ = 0;
  bool retain_ = false;
  bool has_expiry_ = false;
};

// An owning reference to a Message, for containers.
class MessageRef {
 public:
  MessageRef() = default;
  // Adopts a reference the caller already owns (e.g. from Message::Make).
  static MessageRef Adopt(const Message* message) {
    MessageRef ref;
    ref.message_ = message;
    return ref;
  }
  // Takes a new reference.
  static MessageRef Share(const Message* message) {
    if (message != nullptr) message->Ref();
    return Adopt(message);
  }
  MessageRef(const MessageRef& other) : message_(other.message_) {
    if (message_ != nullptr) message_->Ref();
  }
  MessageRef(MessageRef&& other) noexcept : message_(other.message_) { other.message_ = nullptr; }
  MessageRef& operator=(MessageRef other) noexcept {
    std::swap(message_, other.message_);
    return *this;
  }
  ~MessageRef() {
    if (message_ != nullptr) message_->Unref();
  }

  const Message* get() const { return message_; }
  const Message* operator->() const { return message_; }
  const Message& operator*() const { return *message_; }
  explicit operator bool() const { return message_ != nullptr; }
  // Gives up ownership without dropping the reference (e.g. into a MailItem).
  const Message* Release() {
    const Message* message = message_;
    message_ = nullptr;
    return message;
  }

 private:
  const Message* message_ = nullptr;
};

}  // namespace shardmq::broker
