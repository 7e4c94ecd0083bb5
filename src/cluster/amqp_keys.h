// AMQP keys for MQTT names: the routing key a PUBLISH's topic name is sent
// with, and the topic-exchange binding keys that make a node receive what
// one of its MQTT filters matches.
//
// AMQP topic exchanges match '.'-separated words, '*' being exactly one word
// and '#' zero or more, on keys of at most 255 bytes. MQTT matching is richer
// (empty levels, '.' inside a level, '$' topics hidden from leading
// wildcards) and unbounded in length, so the mapping is:
//
//   routing key  = class "." word(level1) "." word(level2) ...
//   binding key  = class "." (word(level) | "*" for '+' | "#" for '#') ...
//   word(level)  = "w" + level with '.', '*', '#', '%' as "%2E" "%2A" "%23" "%25"
//   class        = "n" for topics whose first level does not start with '$',
//                  "d" for those that do. A filter starting with a literal
//                  level binds the class its first level says; one starting
//                  with a wildcard binds only "n" [MQTT-4.7.2-1].
//
// The "w" prefix makes every word non-empty ("a//b" -> "n.wa.w.wb") and never
// a bare '*' or '#'; escaping keeps '.' from splitting a level. "a/#" maps to
// "n.wa.#", which matches "n.wa" as MQTT's "a/#" matches "a". For keys that
// fit, AMQP matching of these keys is exactly MQTT matching of the names.
//
// Long names. A routing key that would exceed 255 bytes is sent in the
// truncated class ("tn" or "td") with as many leading words as fit. Every
// filter that could match such a topic (any filter with a wildcard, or one
// whose own key is long) also binds "t<class>." + its leading literal words
// that fit + ".#", and a filter whose exact key is too long binds the same
// kind of prefix + "#" in its own class. Those bindings are supersets: a node
// may receive a message none of its filters match. That is harmless because a
// node always re-matches a message from RabbitMQ against its own subscription
// trie before delivering it; what the mapping guarantees is no false
// negatives, ever, and exactness whenever the keys fit.
//
//   RoutingKey("a/b.c")     -> "n.wa.wb%2Ec"
//   BindingKeys("+/b/#")    -> {"n.*.wb.#", "tn.#"}
//   BindingKeys("$SYS/x")   -> {"d.w$SYS.wx"}
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace shardmq::cluster {

// AMQP short strings (routing and binding keys) hold at most this many bytes.
inline constexpr size_t kMaxAmqpKey = 255;

// The routing key for a valid MQTT topic name (no wildcards). At most
// kMaxAmqpKey bytes.
std::string RoutingKey(std::string_view topic_name);

// The binding keys for a valid MQTT filter (not a "$share/" one: pass its
// inner filter). One key, or two when the filter could match a topic whose
// routing key is truncated. Each at most kMaxAmqpKey bytes.
std::vector<std::string> BindingKeys(std::string_view filter);

// The name of the queue shared by all nodes for "$share/{group}/{filter}"
// (amqp_link.h): "shardmq.share." and 32 hex digits of a 128-bit FNV-1a
// hash of group "\0" filter, the same in every process, version and
// machine (unlike absl::Hash, seeded per process).
//   SharedQueueName("g", "a/#") -> "shardmq.share.<32 hex digits>"
std::string SharedQueueName(std::string_view group, std::string_view filter);

}  // namespace shardmq::cluster
