#include "broker/record_codec.h"

#include "absl/strings/str_format.h"

namespace shardmq::broker::records {

void PutProperties(const mqtt::Properties* properties, std::string& out) {
  if (properties == nullptr) {
    PutU32(0, out);
    return;
  }
  // The block with its varint length, then the length prefix dropped: the
  // record's own u32 says how long the body is.
  const size_t body = mqtt::PropertiesBodySize(*properties);
  std::string block(mqtt::PropertiesSize(*properties), '\0');
  const size_t written =
      mqtt::EncodeProperties(*properties, body, reinterpret_cast<uint8_t*>(block.data()));
  PutU32(static_cast<uint32_t>(body), out);
  out.append(block.data() + (written - body), body);
}

absl::StatusOr<mqtt::Properties> DecodePropertiesBody(absl::Span<const uint8_t> body) {
  mqtt::Properties properties;
  if (body.empty()) return properties;
  mqtt::PropertyError error = mqtt::DecodeProperties(body, mqtt::kCtxPublish, &properties);
  if (!error.ok()) {
    return absl::DataLossError(
        absl::StrFormat("properties: %s", error.what != nullptr ? error.what : "invalid"));
  }
  return properties;
}

}  // namespace shardmq::broker::records
