// BrokerShard's side of shardmq/hooks.h: what a hook is told about a
// session and a message, and OnMessageArrived's rewrites. Every caller has
// already asked HooksWant(...), so none of this runs without hooks.
#include "base/log.h"
#include "broker/broker_shard.h"
#include "mqtt/topic_validation.h"

namespace shardmq::broker {
namespace {

std::string_view AsText(absl::Span<const uint8_t> bytes) {
  return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void CopyUserProperties(const mqtt::Properties* properties, MessageView& view) {
  if (properties == nullptr) return;
  view.user_properties.assign(properties->user_properties.begin(),
                              properties->user_properties.end());
}

}  // namespace

ClientInfo BrokerShard::InfoFor(const Session& session) const {
  ClientInfo info;
  info.client_id = session.client_id;
  info.shard = shard_.id();
  auto it = extras_.find(&session);
  if (it != extras_.end()) {
    const SessionExtra& extra = *it->second;
    if (extra.username.has_value()) info.username = *extra.username;
    info.remote_address = extra.peer;
    info.protocol_version = extra.protocol_version;
    info.certificate_identity = extra.certificate_identity;
    info.username_from_certificate = extra.username_from_certificate;
    info.inline_client = extra.inline_sink != nullptr;
  }
  return info;
}

MessageView BrokerShard::ViewOf(const Message& message) {
  MessageView view;
  view.topic = message.topic();
  view.payload = AsText(message.payload());
  view.qos = message.qos();
  view.retain = message.retain();
  view.publisher = message.publisher();
  CopyUserProperties(message.properties(), view);
  return view;
}

MessageView BrokerShard::ViewOf(const Message::Fields& fields) {
  MessageView view;
  view.topic = fields.topic;
  view.payload = AsText(fields.payload);
  view.qos = fields.qos;
  view.retain = fields.retain;
  view.publisher = fields.publisher;
  CopyUserProperties(fields.properties, view);
  return view;
}

void BrokerShard::NoteDropped(std::string_view client_id, const Message& message, DropReason why) {
  if (!HooksWant(kHookDropped)) return;
  context_.hooks.MessageDropped(client_id, ViewOf(message), why);
}

MessageVerdict BrokerShard::RunArrivedHooks(const ClientInfo& publisher, Message::Fields& fields,
                                            std::optional<ArrivedMessage>& arrived,
                                            std::optional<mqtt::Properties>& properties) {
  arrived.emplace();
  arrived->message = ViewOf(fields);
  MessageVerdict verdict = context_.hooks.MessageArrived(publisher, *arrived);
  if (verdict.kind != MessageVerdict::Kind::kAccept) return verdict;
  if (arrived->new_topic.has_value()) {
    mqtt::TopicLimits limits;
    limits.max_length = limits_.max_topic_length;
    limits.max_levels = limits_.max_topic_levels;
    // A hook's mistake must not route to a filter-like name.
    if (mqtt::ValidateTopicName(*arrived->new_topic, limits) != mqtt::TopicError::kOk) {
      SHARDMQ_LOG(kWarning, "a message hook rewrote a topic to \"%s\", not a topic name",
                  *arrived->new_topic);
      return MessageVerdict::Reject(0x80);
    }
    fields.topic = *arrived->new_topic;
  }
  if (arrived->new_payload.has_value()) {
    fields.payload =
        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(arrived->new_payload->data()),
                                  arrived->new_payload->size());
  }
  if (arrived->new_user_properties.has_value()) {
    properties.emplace();
    if (fields.properties != nullptr) *properties = *fields.properties;
    properties->user_properties.clear();
    for (const auto& [name, value] : *arrived->new_user_properties) {
      properties->user_properties.emplace_back(name, value);
    }
    fields.properties = &*properties;
  }
  return verdict;
}

}  // namespace shardmq::broker
