// The deterministic test harness itself: CAF's test coordinator with batchq's
// message types registered, and the virtual clock.
#define CAF_SUITE actors.smoke
#include "tests/actors/fixture.hpp"

CAF_TEST_FIXTURE_SCOPE(smoke_tests, batchq::test::actor_fixture)

CAF_TEST(a delayed message arrives only when the virtual clock advances) {
  auto a = sys.spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[=](batchq::tick_atom) { return 1; }};
  });
  self->delayed_send(a, std::chrono::seconds(5), batchq::tick_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(sched.jobs.size(), 0u);
  CAF_CHECK(sched.trigger_timeout());
  expect((batchq::tick_atom), from(self).to(a));
}

CAF_TEST_FIXTURE_SCOPE_END()
