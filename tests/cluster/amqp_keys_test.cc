// amqp_keys: AMQP topic-exchange matching of the mapped keys against MQTT
// matching of the names (src/topic's FilterMatches). The AMQP side is a small
// reference of RabbitMQ's topic matching written here: '.'-separated words,
// '*' exactly one word, '#' zero or more. Over exhaustive small cases and
// random ones full of empty levels, '$' topics, '.', '*', '#', '%' inside
// levels and names too long for a key: never a false negative, and exact
// whenever neither key was truncated.
#include "cluster/amqp_keys.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "topic/levels.h"

namespace shardmq::cluster {
namespace {

std::vector<std::string_view> Words(std::string_view key) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    out.push_back(key.substr(start, dot == std::string_view::npos ? key.npos : dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

// RabbitMQ's topic matching, by backtracking over words.
bool AmqpMatchWords(const std::vector<std::string_view>& b, size_t bi,
                    const std::vector<std::string_view>& r, size_t ri) {
  if (bi == b.size()) return ri == r.size();
  if (b[bi] == "#") {
    for (size_t skip = ri; skip <= r.size(); ++skip) {
      if (AmqpMatchWords(b, bi + 1, r, skip)) return true;
    }
    return false;
  }
  if (ri == r.size()) return false;
  if (b[bi] != "*" && b[bi] != r[ri]) return false;
  return AmqpMatchWords(b, bi + 1, r, ri + 1);
}

bool AmqpMatches(std::string_view binding, std::string_view routing) {
  return AmqpMatchWords(Words(binding), 0, Words(routing), 0);
}

bool AnyBindingMatches(std::string_view filter, const std::string& routing) {
  for (const std::string& key : BindingKeys(filter)) {
    if (AmqpMatches(key, routing)) return true;
  }
  return false;
}

// The untruncated binding key, mapped naively here (one level at a time).
std::string NaiveBinding(std::string_view filter) {
  std::vector<std::string_view> levels;
  for (std::string_view level : topic::TopicLevels(filter)) levels.push_back(level);
  bool dollar = levels[0] != "+" && levels[0] != "#" && levels[0].starts_with('$');
  std::string key = dollar ? "d" : "n";
  for (std::string_view level : levels) {
    key += ".";
    if (level == "+" || level == "#") {
      key += level == "+" ? "*" : "#";
      continue;
    }
    key += "w";
    for (char c : level) {
      if (c == '.' || c == '*' || c == '#' || c == '%') {
        static const char kHex[] = "0123456789ABCDEF";
        key += '%';
        key += kHex[static_cast<unsigned char>(c) >> 4];
        key += kHex[c & 15];
      } else {
        key += c;
      }
    }
  }
  return key;
}

// Whether both keys are the untruncated mapping (then matching must be exact).
bool Untruncated(std::string_view filter, const std::string& routing) {
  if (routing[0] == 't') return false;
  std::string naive = NaiveBinding(filter);
  if (naive.size() > kMaxAmqpKey) return false;
  EXPECT_EQ(BindingKeys(filter)[0], naive);
  return true;
}

void Check(std::string_view filter, std::string_view topic_name) {
  std::string routing = RoutingKey(topic_name);
  ASSERT_LE(routing.size(), kMaxAmqpKey);
  for (const std::string& key : BindingKeys(filter)) ASSERT_LE(key.size(), kMaxAmqpKey);
  bool mqtt = topic::FilterMatches(filter, topic_name);
  bool amqp = AnyBindingMatches(filter, routing);
  if (mqtt) {
    EXPECT_TRUE(amqp) << "false negative: filter '" << filter << "' topic '" << topic_name
                      << "' routing '" << routing << "' binding '" << BindingKeys(filter)[0] << "'";
  }
  if (Untruncated(filter, routing)) {
    // Only the class binding can match an untruncated routing key.
    EXPECT_EQ(AmqpMatches(BindingKeys(filter)[0], routing), mqtt)
        << "filter '" << filter << "' topic '" << topic_name << "'";
  }
}

TEST(AmqpKeys, Examples) {
  EXPECT_EQ(RoutingKey("a/b.c"), "n.wa.wb%2Ec");
  EXPECT_EQ(RoutingKey("a//b"), "n.wa.w.wb");
  EXPECT_EQ(RoutingKey("/"), "n.w.w");
  EXPECT_EQ(RoutingKey("$SYS/x"), "d.w$SYS.wx");
  EXPECT_EQ(RoutingKey("*/#/%"), "n.w%2A.w%23.w%25");
  EXPECT_EQ(BindingKeys("+/b/#"), (std::vector<std::string>{"n.*.wb.#", "tn.#"}));
  EXPECT_EQ(BindingKeys("$SYS/x"), (std::vector<std::string>{"d.w$SYS.wx"}));
  EXPECT_EQ(BindingKeys("a/#"), (std::vector<std::string>{"n.wa.#", "tn.wa.#"}));
  EXPECT_EQ(BindingKeys("#"), (std::vector<std::string>{"n.#", "tn.#"}));
}

TEST(AmqpKeys, SpecCases) {
  // MQTT 4.7's examples and the corners the mapping exists for.
  EXPECT_TRUE(AmqpMatches(BindingKeys("a/#")[0], RoutingKey("a")));
  EXPECT_TRUE(AmqpMatches(BindingKeys("sport/+")[0], RoutingKey("sport/")));
  EXPECT_FALSE(AmqpMatches(BindingKeys("sport/+")[0], RoutingKey("sport")));
  EXPECT_FALSE(AnyBindingMatches("#", RoutingKey("$SYS/x")));
  EXPECT_FALSE(AnyBindingMatches("+/x", RoutingKey("$SYS/x")));
  EXPECT_TRUE(AnyBindingMatches("$SYS/#", RoutingKey("$SYS/x")));
  EXPECT_FALSE(AnyBindingMatches("a/+", RoutingKey("a/b.c/d")));
  EXPECT_TRUE(AnyBindingMatches("a/+", RoutingKey("a/b.c")));
  EXPECT_FALSE(AnyBindingMatches("a/*", RoutingKey("a/b")));  // '*' is a literal level in MQTT
  EXPECT_FALSE(AnyBindingMatches("a/b", RoutingKey("a/#")));  // so is '#' in a topic name
}

TEST(AmqpKeys, LongNamesFallBackToSupersets) {
  std::string big(300, 'x');
  std::string topic = "a/" + big + "/c";
  std::string routing = RoutingKey(topic);
  EXPECT_EQ(routing, "tn.wa");
  EXPECT_TRUE(AnyBindingMatches("a/+/c", routing));
  EXPECT_TRUE(AnyBindingMatches("+/+/+", routing));
  EXPECT_TRUE(AnyBindingMatches(topic, routing));
  EXPECT_TRUE(AnyBindingMatches("#", routing));
  EXPECT_FALSE(AnyBindingMatches("b/+/c", routing));
  EXPECT_FALSE(AnyBindingMatches("$x/#", routing));
  EXPECT_FALSE(AnyBindingMatches("a/b/c", routing));
  // A long filter binds a prefix + '#' in its own class.
  std::vector<std::string> keys = BindingKeys(topic);
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0], "n.wa.#");
  EXPECT_EQ(keys[1], "tn.wa.#");
}

// The unoptimised sanitizer build (CI's ASan+UBSan step) checks a tenth of
// the cases, to stay within the test timeout; the release build checks all.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kScale = 10;
constexpr int kMaxDepth = 2;
#else
constexpr int kScale = 1;
constexpr int kMaxDepth = 3;
#endif

// Every filter and topic over a small alphabet of levels, up to 3 levels.
TEST(AmqpKeys, ExhaustiveSmall) {
  const std::vector<std::string> topic_levels = {"", "a", "$a", ".", "*", "#x", "%", "a.b", "w"};
  std::vector<std::string> filter_levels = topic_levels;
  filter_levels.push_back("+");
  auto expand = [](const std::vector<std::string>& levels, bool filter) {
    std::vector<std::string> out;
    std::vector<std::string> frontier = {""};
    for (int depth = 1; depth <= kMaxDepth; ++depth) {
      std::vector<std::string> next;
      for (const std::string& base : frontier) {
        for (const std::string& level : levels) {
          std::string name = depth == 1 ? level : base + "/" + level;
          next.push_back(name);
          out.push_back(name);
          if (filter) out.push_back(name + "/#");
        }
      }
      frontier = std::move(next);
    }
    if (filter) out.push_back("#");
    return out;
  };
  std::vector<std::string> topics = expand(topic_levels, false);
  std::vector<std::string> filters = expand(filter_levels, true);
  for (const std::string& f : filters) {
    for (const std::string& t : topics) Check(f, t);
  }
}

class Random {
 public:
  explicit Random(uint32_t seed) : rng_(seed) {}
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::string Level() {
    switch (Uniform(0, 12)) {
      case 0:
        return "";
      case 1:
        return ".";
      case 2:
        return "*";
      case 3:
        return "#a";
      case 4:
        return "%2E";
      case 5:
        return "a.b";
      case 6:
        return std::string(Uniform(40, 140), 'x');  // pushes keys past 255
      case 7:
        return std::string(Uniform(20, 90), '.');  // triples when escaped
      default:
        return std::string(1, static_cast<char>('a' + Uniform(0, 2)));
    }
  }
  std::string Topic() {
    std::string out;
    if (Uniform(0, 6) == 0) {
      out = "$s";
    } else {
      out = Level();
    }
    int more = Uniform(0, 5);
    for (int i = 0; i < more; ++i) {
      out += '/';
      out += Level();
    }
    return out;
  }
  // A filter built from a topic, so matches are common: some levels become
  // '+', the tail may become '#', some levels change.
  std::string FilterFor(const std::string& topic_name) {
    std::vector<std::string> levels;
    for (std::string_view level : topic::TopicLevels(topic_name)) levels.emplace_back(level);
    std::string out;
    size_t keep = levels.size();
    bool hash = Uniform(0, 3) == 0;
    if (hash) keep = Uniform(0, static_cast<int>(levels.size()));
    for (size_t i = 0; i < keep; ++i) {
      if (i > 0) out += "/";
      int r = Uniform(0, 9);
      out += r < 3 ? "+" : r == 3 ? Level() : levels[i];
    }
    if (hash) out += keep == 0 ? "#" : "/#";
    return out;
  }

 private:
  std::mt19937 rng_;
};

TEST(AmqpKeys, RandomNeverAFalseNegative) {
  Random random(20261122);
  int matched = 0;
  int truncated = 0;
  for (int i = 0; i < 200000 / kScale; ++i) {
    std::string t = random.Topic();
    std::string f =
        random.Uniform(0, 4) == 0 ? random.FilterFor(random.Topic()) : random.FilterFor(t);
    if (topic::FilterMatches(f, t)) ++matched;
    if (RoutingKey(t)[0] == 't') ++truncated;
    Check(f, t);
    if (HasFailure()) break;
  }
  // The generator must exercise both matches and truncated keys.
  EXPECT_GT(matched, 20000 / kScale);
  EXPECT_GT(truncated, 5000 / kScale);
}

// The shared queue's name is the same on every node, in every process:
// 128-bit FNV-1a of group "\0" filter (checked against a Python reference).
TEST(AmqpKeys, SharedQueueNameIsStable) {
  EXPECT_EQ(SharedQueueName("g", "a/#"), "shardmq.share.1e44b2a6c883d94f70813fba9c38a1ab");
  EXPECT_EQ(SharedQueueName("g", "t/#"), "shardmq.share.1e4477958b83d94f70813fba83fd8b9c");
  // The separator keeps the group and filter apart.
  EXPECT_NE(SharedQueueName("ab", "c"), SharedQueueName("a", "bc"));
  EXPECT_NE(SharedQueueName("g1", "a/#"), SharedQueueName("g2", "a/#"));
  EXPECT_EQ(SharedQueueName("g", std::string(300, 'x')).size(), 14u + 32u);
}

}  // namespace
}  // namespace shardmq::cluster
