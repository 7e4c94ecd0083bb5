// The matching rules of MQTT 5 section 4.7 as a table of (filter, topic name,
// matches?), shared by every matcher's tests. The spec's own examples come
// first, in the order the spec gives them.
#pragma once

#include <string_view>

namespace shardmq::topic::testing {

struct SpecCase {
  std::string_view filter;
  std::string_view topic;
  bool matches;
};

inline constexpr SpecCase kSpecCases[] = {
    // 4.7.1.2 Multi-level wildcard.
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/#", "sport", true},
    {"#", "sport", true},
    {"#", "sport/tennis/player1", true},
    {"sport/tennis/#", "sport/tennisplayer1", false},
    {"sport/tennis/#", "sport", false},
    // 4.7.1.3 Single-level wildcard.
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "/finance", false},
    {"+/tennis/#", "sport/tennis/player1", true},
    {"+/tennis/#", "sport/tennis", true},
    {"sport/+/player1", "sport/tennis/player1", true},
    {"sport/+/player1", "sport/tennis/player2", false},
    // 4.7.2 Topics beginning with $ [MQTT-4.7.2-1].
    {"#", "$SYS/monitor/Clients", false},
    {"#", "$SYS", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"+", "$SYS", false},
    {"+/#", "$SYS/x", false},
    {"+", "$", false},
    {"$SYS/#", "$SYSX/a", false},
    // Only the FIRST level is special: '$' further in is an ordinary character.
    {"a/+", "a/$b", true},
    {"a/#", "a/$b/c", true},
    {"+", "a$", true},
    // 4.7.3 Topic semantics: exact, case-sensitive, spaces allowed.
    {"ACCOUNTS", "Accounts", false},
    {"Accounts payable", "Accounts payable", true},
    {"/finance", "finance", false},
    {"finance", "/finance", false},
    // Empty levels are levels.
    {"a//b", "a//b", true},
    {"a/+/b", "a//b", true},
    {"a/b", "a//b", false},
    {"a//b", "a/b", false},
    {"a/+", "a/", true},
    {"a", "a/", false},
    {"a/", "a", false},
    {"+/+", "/", true},
    {"+", "/", false},
    {"#", "/", true},
    {"/#", "/", true},
    {"/#", "/a/b", true},
    {"/#", "a", false},
    {"a/#", "a/", true},
    {"a/#", "a", true},
    {"a/+/#", "a", false},
    {"a/+/#", "a/", true},
    {"+/#", "a", true},
    {"+/+/+", "//", true},
    {"+/+/+", "/", false},
    // Lengths must agree unless a '#' ends the filter.
    {"a/b/c", "a/b", false},
    {"a/b", "a/b/c", false},
    {"+/+", "a/b/c", false},
    {"a/b/c", "a/b/c", true},
};

}  // namespace shardmq::topic::testing
