// The deterministic actor-test fixture: CAF's test coordinator (one thread, a
// virtual clock: sched.run(), sched.trigger_timeout(), advance_time(); never
// sleep) with batchq's types registered. Include after defining CAF_SUITE.
#pragma once

// 0.17.6 bug: dsl.hpp's fixture::request<T>() calls an undefined FAIL().
#define FAIL(msg) CAF_FAIL(msg)
#include "caf/test/dsl.hpp"

#include "messages/interfaces.hpp"
#include "messages/type_ids.hpp"

namespace batchq::test {

struct actor_config : caf::actor_system_config {
  actor_config() { register_types(*this); }
};

struct actor_fixture : test_coordinator_fixture<actor_config> {};

} // namespace batchq::test
