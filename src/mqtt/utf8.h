// Validation of MQTT UTF-8 Encoded Strings (MQTT 5 section 1.5.4, 3.1.1
// section 1.5.3). Every string the decoder hands out has passed this check,
// so the rest of the broker may treat topics and client ids as valid UTF-8.
#pragma once

#include <string_view>

namespace shardmq::mqtt {

// Returns true when `s` is well-formed UTF-8 as MQTT requires:
//  - no ill-formed sequences, overlong encodings or code points > U+10FFFF
//    [MQTT-1.5.4-1];
//  - no UTF-16 surrogates U+D800..U+DFFF [MQTT-1.5.4-1];
//  - no U+0000 [MQTT-1.5.4-2].
// U+FEFF (0xEF 0xBB 0xBF) is an ordinary character and is accepted
// [MQTT-1.5.4-3]. Control characters and non-characters are accepted (the
// spec says SHOULD NOT, and lets the receiver decide).
// Runs 8 ASCII bytes per step; multi-byte sequences take the slow path.
bool IsValidMqttUtf8(std::string_view s);

}  // namespace shardmq::mqtt
