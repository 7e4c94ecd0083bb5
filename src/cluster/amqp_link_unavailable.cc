// AmqpLink for builds without rabbitmq-c (librabbitmq-dev was not found when
// meson configured): clustering is refused at start-up with a message that
// says so, and nothing else changes.
#include "cluster/amqp_link.h"

namespace shardmq::cluster {

class AmqpLink::Connection {};

absl::StatusOr<std::unique_ptr<AmqpLink>> AmqpLink::Create(AmqpLinkOptions, Deliver) {
  return absl::UnimplementedError(
      "--cluster-amqp: this shardmq was built without rabbitmq-c (install librabbitmq-dev "
      "and reconfigure)");
}

AmqpLink::~AmqpLink() = default;
void AmqpLink::Start() {}
void AmqpLink::Stop() {}
bool AmqpLink::Publish(std::string_view, bool, uint8_t, std::string) { return false; }
bool AmqpLink::PastCongestion() const { return true; }
void AmqpLink::FilterAdded(std::string_view, absl::AnyInvocable<void()>) {}
void AmqpLink::FilterRemoved(std::string_view) {}
void AmqpLink::SharedAdded(std::string_view, std::string_view) {}
void AmqpLink::SharedRemoved(std::string_view, std::string_view) {}
AmqpLinkStats AmqpLink::Stats() const { return {}; }

}  // namespace shardmq::cluster
