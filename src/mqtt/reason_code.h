// Reason codes: the single vocabulary the codec uses to report outcomes.
// MQTT 5 puts them on the wire (CONNACK, acks, DISCONNECT, AUTH); for 3.x
// connections the broker maps them to CONNACK return codes or a silent close.
#pragma once

#include <cstdint>

namespace shardmq::mqtt {

// Every MQTT 5.0 reason code (section 2.4). Several names share a value
// because the meaning of 0x00..0x02 depends on the packet carrying it.
enum class ReasonCode : uint8_t {
  kSuccess = 0x00,
  kNormalDisconnection = 0x00,
  kGrantedQos0 = 0x00,
  kGrantedQos1 = 0x01,
  kGrantedQos2 = 0x02,
  kDisconnectWithWillMessage = 0x04,
  kNoMatchingSubscribers = 0x10,
  kNoSubscriptionExisted = 0x11,
  kContinueAuthentication = 0x18,
  kReAuthenticate = 0x19,
  kUnspecifiedError = 0x80,
  kMalformedPacket = 0x81,
  kProtocolError = 0x82,
  kImplementationSpecificError = 0x83,
  kUnsupportedProtocolVersion = 0x84,
  kClientIdentifierNotValid = 0x85,
  kBadUserNameOrPassword = 0x86,
  kNotAuthorized = 0x87,
  kServerUnavailable = 0x88,
  kServerBusy = 0x89,
  kBanned = 0x8A,
  kServerShuttingDown = 0x8B,
  kBadAuthenticationMethod = 0x8C,
  kKeepAliveTimeout = 0x8D,
  kSessionTakenOver = 0x8E,
  kTopicFilterInvalid = 0x8F,
  kTopicNameInvalid = 0x90,
  kPacketIdentifierInUse = 0x91,
  kPacketIdentifierNotFound = 0x92,
  kReceiveMaximumExceeded = 0x93,
  kTopicAliasInvalid = 0x94,
  kPacketTooLarge = 0x95,
  kMessageRateTooHigh = 0x96,
  kQuotaExceeded = 0x97,
  kAdministrativeAction = 0x98,
  kPayloadFormatInvalid = 0x99,
  kRetainNotSupported = 0x9A,
  kQosNotSupported = 0x9B,
  kUseAnotherServer = 0x9C,
  kServerMoved = 0x9D,
  kSharedSubscriptionsNotSupported = 0x9E,
  kConnectionRateExceeded = 0x9F,
  kMaximumConnectTime = 0xA0,
  kSubscriptionIdentifiersNotSupported = 0xA1,
  kWildcardSubscriptionsNotSupported = 0xA2,
};

// MQTT 3.1 / 3.1.1 CONNACK return codes (3.1.1 section 3.2.2.3).
enum class ConnectReturnCode : uint8_t {
  kAccepted = 0x00,
  kUnacceptableProtocolVersion = 0x01,
  kIdentifierRejected = 0x02,
  kServerUnavailable = 0x03,
  kBadUserNameOrPassword = 0x04,
  kNotAuthorized = 0x05,
};

// Returns the spec's name of `code` ("Success", "Malformed Packet", ...), or
// "Unknown reason code" for a value the spec does not define. 0x00..0x02 are
// reported by their generic name (Success / Granted QoS 1 / Granted QoS 2).
const char* ReasonCodeName(ReasonCode code);

// Returns the spec's name of a 3.1.1 CONNACK return code.
const char* ConnectReturnCodeName(ConnectReturnCode code);

// Maps an MQTT 5 CONNACK reason to the closest 3.1.1 return code, for
// answering a 3.x client (e.g. kUnsupportedProtocolVersion -> 0x01).
ConnectReturnCode ToConnectReturnCode(ReasonCode code);

// True when `code` is an error (>= 0x80).
constexpr bool IsError(ReasonCode code) { return static_cast<uint8_t>(code) >= 0x80; }

}  // namespace shardmq::mqtt
