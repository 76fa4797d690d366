// The node's pool of runners (actors/runner_pool.hpp) on CAF's test
// coordinator, with FAKE runners (a stand-in behaviour of the job_runner
// interface that counts its exits): reuse, the bound on idle runners, and
// close() reaching idle and busy runners so that the system can shut down.
#define CAF_SUITE actors.runner_pool
#include "tests/actors/fixture.hpp"

#include <memory>

#include "actors/runner_pool.hpp"

using namespace batchq;

namespace {

struct counts {
  int spawned = 0;
  int exited = 0;
};

/// FAKE runner: answers nothing useful; counts its exit.
job_runner_actor::behavior_type fake_runner(job_runner_actor::pointer self,
                                            std::shared_ptr<counts> c) {
  self->attach_functor([c] { ++c->exited; });
  return {
    [](turn_atom, runner_turn_ptr&) {},
    [](claim_atom) { return job_outcome{}; },
    [](run_atom, job_ticket&) { return job_outcome{}; },
    [](step_atom) {},
  };
}

struct pool_fixture : test::actor_fixture {
  std::shared_ptr<counts> c = std::make_shared<counts>();
  runner_pool pool{[c = c](caf::actor_system& sys) {
                     ++c->spawned;
                     return sys.spawn(fake_runner, c);
                   },
                   2};
  ~pool_fixture() {
    pool.close();
    sched.run();
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(runner_pool_tests, pool_fixture)

CAF_TEST(a runner given back serves the next turn and no new one is made) {
  auto a = pool.take(sys);
  CAF_CHECK_EQUAL(c->spawned, 1);
  pool.give(a);
  CAF_CHECK_EQUAL(pool.idle(), 1u);
  auto b = pool.take(sys);
  CAF_CHECK_EQUAL(b, a);
  CAF_CHECK_EQUAL(c->spawned, 1);
  CAF_CHECK_EQUAL(pool.idle(), 0u);
  auto d = pool.take(sys); // the first is busy: a second one
  CAF_CHECK(d != a);
  CAF_CHECK_EQUAL(c->spawned, 2);
  sched.run();
  CAF_CHECK_EQUAL(c->exited, 0);
}

CAF_TEST(at most max idle runners wait and one more is told to exit) {
  auto a = pool.take(sys);
  auto b = pool.take(sys);
  auto d = pool.take(sys);
  pool.give(a);
  pool.give(b);
  pool.give(d);
  sched.run();
  CAF_CHECK_EQUAL(pool.idle(), 2u);
  CAF_CHECK_EQUAL(c->exited, 1);
}

CAF_TEST(close tells idle and busy runners to exit and later ones too) {
  auto idle = pool.take(sys);
  auto busy = pool.take(sys);
  pool.give(idle);
  pool.close();
  sched.run();
  CAF_CHECK_EQUAL(c->exited, 2); // both, the busy one included
  CAF_CHECK_EQUAL(pool.idle(), 0u);
  pool.give(busy); // its turn ended after the close: nothing waits
  CAF_CHECK_EQUAL(pool.idle(), 0u);
  auto late = pool.take(sys); // a turn granted during the shutdown
  sched.run();
  CAF_CHECK_EQUAL(c->spawned, 3);
  CAF_CHECK_EQUAL(c->exited, 3);
}

CAF_TEST_FIXTURE_SCOPE_END()
