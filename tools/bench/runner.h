// Runs one scenario end to end: plans the clients, spreads them over worker
// threads, walks the phases (connect, subscribe, publish, drain, stop) and
// turns what the workers measured into Results.
#pragma once

#include <vector>

#include "config.h"
#include "report.h"
#include "shared_state.h"

namespace shardmq::bench {

// The clients a scenario opens (exposed for tests).
std::vector<ClientSpec> PlanClients(const Config& config);

// Runs the scenario; never throws. Results.error says why a run could not
// complete (unreachable broker, refused CONNECT, ...).
Results RunScenario(const Config& config);

}  // namespace shardmq::bench
