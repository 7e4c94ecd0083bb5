// Mosquitto-format ACL files: who may publish to, subscribe to and receive
// from which topics.
//
//   # comment                      (blank lines and '#' lines are ignored)
//   topic read $SYS/#              before any "user": anonymous clients only
//   user alice                     starts alice's section (name = rest of line)
//   topic readwrite alice/#        alice only
//   topic deny alice/secret        alice only: never, whatever else allows it
//   pattern write devices/%c/out   every client; %c = client id, %u = username
//
//   absl::StatusOr<AclFile> acl = AclFile::Load("/etc/shardmq/acl");
//   acl->MayPublish("alice", "dev1", "alice/x");    // true
//   acl->MaySubscribe(std::nullopt, "c", "$SYS/#"); // true (anonymous)
//
// Line format. "topic [read|write|readwrite|deny] FILTER" and
// "pattern [read|write|readwrite|deny] FILTER"; without an access word the
// access is readwrite. FILTER is the rest of the line with blanks trimmed at
// both ends (so it may contain inner spaces, as in Mosquitto) and must be a
// valid MQTT filter ('+' and '#' only as whole levels, '#' last). "user NAME"
// takes the rest of the line as the name; a second section for the same name
// adds to the first. Any other line stops loading with "FILE:LINE: why".
//
// Per-user limits (a shardmq extension; Mosquitto 2.0 refuses a file that
// contains them with 'Invalid line in acl_file ...: limit', so keep limits
// out of files Mosquitto must also load):
//
//   limit max_qos 1                    before any "user": every client,
//   limit shared_subscriptions deny    anonymous ones included
//   user alice
//   limit max_qos 2                    alice only: overrides the global 1
//   limit publish_rate unlimited       alice only: cancels a global rate
//
// "limit NAME VALUE", one value per line:
//   max_qos 0|1|2                     highest QoS granted in SUBACK and
//                                     accepted in PUBLISH
//   shared_subscriptions allow|deny   whether "$share/..." filters are allowed
//   max_subscriptions N|unlimited     filters one session may hold at once
//   publish_rate N|unlimited          PUBLISH packets per second, per connection
//   max_connections N|unlimited       connections with this username at once
// N is 1..4294967295 (no 0: forbid with topic grants or the password file
// instead). Note the placement rule differs from "topic": a "topic" line
// before any "user" is for anonymous clients only, a "limit" line there is
// for everybody. A user's value replaces the global one setting by setting
// (it may raise it; "unlimited" removes it). A setting given twice for the
// same section (also across repeated "user NAME" sections) stops loading.
// LimitsFor() returns the resolved values; an empty field means the file sets
// no limit, and the broker's own flags decide (apply the stricter of both).
//
// Semantics of a check (one request by one client):
//   1. Which entries apply: the "topic" entries of the client's user section
//      when it has a username (none if the file has no section for it); the
//      anonymous "topic" entries when it has no username; and every "pattern"
//      entry, after replacing %u with the username and %c with the client id.
//      A pattern that contains %u does not apply to a client without a
//      username.
//   2. Injection refusal: if any pattern in the file uses %u and the username
//      contains '+', '#' or '/', or any pattern uses %c and the client id
//      does, the whole request is refused (fail closed), so a client cannot
//      widen a pattern or step into another client's subtree.
//   3. Deny wins: if any applicable "deny" entry matches, the request is
//      refused, whatever allows it.
//   4. Otherwise it is allowed when an applicable entry with the needed access
//      matches: write for MayPublish, read for MaySubscribe and MayReceive.
//      No matching entry: refused (default deny).
// Matching:
//   - MayPublish / MayReceive (a topic name): topic::FilterMatches(entry,
//     topic), including the $-rule: "#" or "+/..." entries do not match
//     "$SYS/..." topics; grant those explicitly ("topic read $SYS/#").
//   - MaySubscribe (a filter): the entry must cover the requested filter:
//     level by level, an entry '#' covers the rest (also nothing: "a/#"
//     covers "a"), an entry '+' covers any one level including '+' but not
//     '#', a literal covers only the same literal. A request starting with
//     '$' is not covered by an entry starting with a wildcard. The same rule
//     decides whether a deny entry hits: "topic deny a/#" refuses "a/+/c",
//     but "topic deny a/b" does NOT refuse a subscription to "a/+" (as in
//     Mosquitto); the broker must also call MayReceive for every message it
//     delivers, which then refuses "a/b".
//   - "$share/GROUP/FILTER" is checked as FILTER; a malformed one is refused.
//   - Publishing to "$SYS" or "$SYS/..." is always refused.
//
// Differences from Mosquitto 2.0: Mosquitto allows bridges to publish
// "$SYS/broker/connection/+/state" (there are no bridges here); Mosquitto
// refuses clients whose username/client id contain '+' or '#' whenever the
// file has any pattern, we refuse '+', '#' and '/' but only for the variable
// a pattern actually uses; Mosquitto checks "$share/..." filters as written,
// we check the inner filter; malformed lines and filters are load errors.
//
// Lifecycle and concurrency: loaded once on the control plane, then
// immutable; the const checks are safe from any thread at once. A check
// allocates only when a pattern needs substitution.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "auth/acl_limits.h"

namespace shardmq::auth {

class AclFile {
 public:
  // Reads and parses `path`; errors are "FILE:LINE: why".
  static absl::StatusOr<AclFile> Load(std::string_view path);

  // Parses file contents; `name` is used in error messages only.
  static absl::StatusOr<AclFile> Parse(std::string_view contents, std::string_view name);

  // May this client send PUBLISH to `topic` (a topic name)?
  bool MayPublish(std::optional<std::string_view> username, std::string_view client_id,
                  std::string_view topic) const;

  // May this client SUBSCRIBE to `filter` (a topic filter, maybe "$share/...")?
  bool MaySubscribe(std::optional<std::string_view> username, std::string_view client_id,
                    std::string_view filter) const;

  // May this client be sent a message published to `topic`? (Mosquitto's
  // delivery-time read check; see the file comment.)
  bool MayReceive(std::optional<std::string_view> username, std::string_view client_id,
                  std::string_view topic) const;

  // The limits for a client with this username (none: anonymous), the
  // global "limit" lines overridden by the user's section. Cheap (one hash
  // lookup, no allocation): call it once per CONNECT and keep the result.
  UserLimits LimitsFor(std::optional<std::string_view> username) const;

 private:
  enum Access : uint8_t { kRead = 1, kWrite = 2, kReadWrite = 3 };
  struct Entry {
    std::string filter;
    uint8_t access = kReadWrite;  // Access bits; a deny entry matches both.
    bool deny = false;
    bool uses_username = false;  // Patterns only: contains %u / %c.
    bool uses_client_id = false;
  };
  enum class Kind : uint8_t { kTopicName, kFilter };

  bool Check(std::optional<std::string_view> username, std::string_view client_id,
             std::string_view target, Kind kind, uint8_t access) const;

  std::vector<Entry> anonymous_;
  absl::flat_hash_map<std::string, std::vector<Entry>> users_;
  std::vector<Entry> patterns_;
  bool patterns_use_username_ = false;
  bool patterns_use_client_id_ = false;
  LimitSection global_limits_;
  absl::flat_hash_map<std::string, LimitSection> user_limits_;
};

}  // namespace shardmq::auth
