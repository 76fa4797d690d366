// The subscriber (actors/subscriber.hpp) on CAF's test coordinator without its
// SUBSCRIBE thread (the test sends `wants` as the thread would), with a fake
// queue index (below) and a mock scheduler that records `wants`.
#define CAF_SUITE actors.subscriber
#include "tests/actors/fixture.hpp"

#include <memory>
#include <sstream>
#include <vector>

#include "actors/subscriber.hpp"
#include "messages/error.hpp"
#include "src/log/log.hpp"

using namespace batchq;
using namespace std::chrono_literals;

namespace {

using strings = std::vector<std::string>;

/// fake_queue_index: a FAKE ports::queue_index; `down` makes every call fail.
class fake_queue_index : public ports::queue_index {
public:
  strings scanned;
  strings indexed;
  bool down = false;
  int rebuilds = 0;
  int reads = 0;

  caf::expected<strings> rebuild() override {
    ++rebuilds;
    if (down)
      return make_error(ec::redis_unavailable, "fake Redis is down");
    for (auto& u : scanned)
      indexed.push_back(u);
    return scanned;
  }

  caf::expected<strings> users() override {
    ++reads;
    if (down)
      return make_error(ec::redis_unavailable, "fake Redis is down");
    return indexed;
  }
};

scheduler_actor::behavior_type mock_scheduler(scheduler_actor::pointer,
                                              std::shared_ptr<strings> wants) {
  return {
    [=](wants_atom, const std::string& user) { wants->push_back(user); },
    [=](started_atom, const std::string&, const std::string&) {},
    [=](ended_atom, const turn_report&) {},
    [=](tick_atom) {},
    [=](drain_atom) { return drain_report{}; },
    [=](stats_atom) { return scheduler_stats{}; },
  };
}

struct subscriber_fixture : test::actor_fixture {
  std::shared_ptr<strings> wants = std::make_shared<strings>();
  std::shared_ptr<fake_queue_index> index = std::make_shared<fake_queue_index>();
  scheduler_actor scheduler = sys.spawn(mock_scheduler, wants);
  subscriber_actor sub;
  std::ostringstream log_lines;

  subscriber_fixture() { log::set_sink(&log_lines); }

  ~subscriber_fixture() {
    // The rescan timer re-arms forever: stop it before the base fixture's run().
    anon_send_exit(sub, caf::exit_reason::user_shutdown);
    sched.run();
    log::set_sink(nullptr);
  }

  void start() {
    subscriber_settings cfg;
    cfg.subscribe = false;
    cfg.rescan_interval = 60s;
    cfg.retry_interval = 1s;
    sub = spawn_subscriber(sys, cfg, scheduler, index, false);
    sched.run();
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(subscriber_tests, subscriber_fixture)

CAF_TEST(at start the index is rebuilt and every user found is reported) {
  index->scanned = {"alice", "bob"};
  start();
  CAF_CHECK_EQUAL(index->rebuilds, 1);
  CAF_CHECK_EQUAL(index->indexed, (strings{"alice", "bob"}));
  CAF_CHECK_EQUAL(*wants, (strings{"alice", "bob"}));
}

CAF_TEST(wants from the subscribe thread are forwarded to the scheduler) {
  start();
  self->send(sub, wants_atom::value, std::string{"carol"});
  expect((wants_atom, std::string), from(self).to(sub).with(_, "carol"));
  expect((wants_atom, std::string), from(sub).to(scheduler).with(_, "carol"));
  CAF_CHECK_EQUAL(*wants, strings{"carol"});
}

CAF_TEST(every rescan interval the index is re read and every user reported) {
  index->scanned = {"alice"};
  start();
  wants->clear();
  index->indexed = {"alice", "dave"};
  advance_time(59s);
  sched.run();
  CAF_CHECK(wants->empty());
  advance_time(1s);
  sched.run();
  CAF_CHECK_EQUAL(*wants, (strings{"alice", "dave"}));
  CAF_CHECK_EQUAL(index->reads, 1);
  advance_time(60s);
  sched.run();
  CAF_CHECK_EQUAL(index->reads, 2);
  CAF_CHECK_EQUAL(index->rebuilds, 1);
}

CAF_TEST(a rescan request re reads the index once without a second timer) {
  start();
  index->indexed = {"erin"};
  self->send(sub, rescan_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(*wants, strings{"erin"});
  CAF_CHECK_EQUAL(index->reads, 1);
  advance_time(60s);
  sched.run();
  CAF_CHECK_EQUAL(index->reads, 2); // one timer only
}

CAF_TEST(a failing index is retried later and the subscriber survives) {
  index->down = true;
  index->scanned = {"alice"};
  start();
  CAF_CHECK(wants->empty());
  CAF_CHECK_EQUAL(index->rebuilds, 1);
  advance_time(1s); // retry_interval: the rebuild is tried again
  sched.run();
  CAF_CHECK_EQUAL(index->rebuilds, 2);
  CAF_CHECK(wants->empty());
  index->down = false;
  advance_time(1s);
  sched.run();
  CAF_CHECK_EQUAL(index->rebuilds, 3);
  CAF_CHECK_EQUAL(*wants, strings{"alice"});
  // A failing periodic read is retried after retry_interval, not 60 s.
  index->down = true;
  advance_time(60s);
  sched.run();
  CAF_CHECK_EQUAL(index->reads, 1);
  index->down = false;
  wants->clear();
  advance_time(1s);
  sched.run();
  CAF_CHECK_EQUAL(index->reads, 2);
  CAF_CHECK_EQUAL(*wants, strings{"alice"});
  // Still answering.
  self->send(sub, wants_atom::value, std::string{"frank"});
  sched.run();
  CAF_CHECK_EQUAL(wants->back(), "frank");
}

CAF_TEST(a failed rescan request is retried after the retry interval) {
  start();
  index->down = true;
  self->send(sub, rescan_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(index->reads, 1);
  index->down = false;
  index->indexed = {"gina"};
  advance_time(1s);
  sched.run();
  CAF_CHECK_EQUAL(index->reads, 2);
  CAF_CHECK_EQUAL(*wants, strings{"gina"});
  advance_time(1s); // succeeded: no further retry
  sched.run();
  CAF_CHECK_EQUAL(index->reads, 2);
}

CAF_TEST(without a subscribe connection the subscriber is not ready) {
  start();
  auto h = self->request(sub, caf::infinite, ready_atom::value);
  sched.run();
  h.receive([](bool ready) { CAF_CHECK(!ready); }, [&](caf::error& e) { CAF_FAIL(sys.render(e)); });
}

CAF_TEST_FIXTURE_SCOPE_END()
