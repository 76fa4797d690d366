// The user_queue (actors/user_queue.hpp) on CAF's test coordinator with a mock
// status (recover answers a count or an error; dequeue hands out prepared
// tickets, then an empty one), mock runners
// that hold their answer until the test releases them, and a mock scheduler
// that records `done` and `idle`.
#define CAF_SUITE actors.user_queue
#include "tests/actors/fixture.hpp"

#include <deque>
#include <memory>
#include <sstream>
#include <vector>

#include "actors/user_queue.hpp"
#include "messages/error.hpp"
#include "src/log/log.hpp"

using namespace batchq;

namespace {

using strings = std::vector<std::string>;

struct world {
  /// What dequeue hands out, in order; then empty tickets.
  std::deque<job_ticket> tickets;
  /// When set, dequeue fails with it.
  caf::error dequeue_error;
  /// (user, lease token) of every dequeue request, in order.
  std::vector<std::pair<std::string, std::string>> dequeues;
  /// "recover <user> <token>" / "dequeue <user> <token>": the status requests in order.
  strings asked;
  /// When set, recover fails with it.
  caf::error recover_error;
  /// Dequeues requested while a runner had not answered yet (must stay 0).
  int dequeues_while_running = 0;
  /// Runners spawned, and how many have not answered yet.
  std::vector<job_runner_actor> runners;
  int running = 0;
  /// Tickets the runners received.
  strings ran;
  /// When set, runners answer `run` with this error at once.
  caf::error runner_error;
  /// What the scheduler heard: "done <job_id> <status> <statements>" or "idle".
  strings events;
};

status_actor::behavior_type mock_status(status_actor::pointer, std::shared_ptr<world> w) {
  return {
    [=](dequeue_atom, const std::string& user,
        const std::string& token) -> caf::result<job_ticket> {
      w->dequeues.emplace_back(user, token);
      w->asked.push_back("dequeue " + user + " " + token);
      if (w->running > 0)
        ++w->dequeues_while_running;
      if (w->dequeue_error)
        return w->dequeue_error;
      if (w->tickets.empty())
        return job_ticket{};
      auto t = w->tickets.front();
      w->tickets.pop_front();
      return t;
    },
    [=](write_atom, const state_write&) { return true; },
    [=](requeue_atom, const state_write&) { return true; },
    [=](cancel_atom, const std::string&, const std::string&) { return pending_cancel{}; },
    [=](recover_atom, const std::string& user,
        const std::string& token) -> caf::result<int32_t> {
      w->asked.push_back("recover " + user + " " + token);
      if (w->recover_error)
        return w->recover_error;
      return int32_t{0};
    },
  };
}

struct mock_runner_state {
  caf::typed_response_promise<job_summary> answer;
  std::string job_id;
};

/// Answers `run` only when the test sends it `step` (then quits, as the real
/// runner does after answering).
job_runner_actor::behavior_type
mock_runner(job_runner_actor::stateful_pointer<mock_runner_state> self, std::shared_ptr<world> w) {
  return {
    [=](run_atom, const job_ticket& t) -> caf::result<job_summary> {
      w->ran.push_back(t.job_id);
      if (w->runner_error)
        return w->runner_error;
      ++w->running;
      self->state.job_id = t.job_id;
      self->state.answer = self->make_response_promise<job_summary>();
      return self->state.answer;
    },
    [=](step_atom) {
      --w->running;
      self->state.answer.deliver(job_summary{self->state.job_id, "done", 2, 10});
      self->quit();
    },
  };
}

scheduler_actor::behavior_type mock_scheduler(scheduler_actor::pointer, std::shared_ptr<world> w) {
  return {
    [=](wants_atom, const std::string&) {},
    [=](done_atom, const std::string& user, const job_summary& s) {
      w->events.push_back("done " + user + " " + s.job_id + " " + s.status + " "
                          + std::to_string(s.statements_run));
    },
    [=](idle_atom, const std::string& user) { w->events.push_back("idle " + user); },
    [=](tick_atom) {},
    [=](drain_atom) { return drain_report{}; },
    [=](stats_atom) { return scheduler_stats{}; },
  };
}

job_ticket ticket(const std::string& id) {
  return job_ticket{id, "alice", "tok", {{"status", "running"}}};
}

struct user_queue_fixture : test::actor_fixture {
  std::shared_ptr<world> w = std::make_shared<world>();
  status_actor status = sys.spawn(mock_status, w);
  scheduler_actor scheduler = sys.spawn(mock_scheduler, w);
  user_queue_actor uq;
  std::ostringstream log_lines;

  user_queue_fixture() {
    log::set_sink(&log_lines);
    auto wp = w;
    uq = spawn_user_queue(sys, "alice", "tok", scheduler, status, [wp](caf::actor_system& s) {
      auto r = s.spawn(mock_runner, wp);
      wp->runners.push_back(r);
      return job_runner_actor{r};
    });
    sched.run();
  }

  ~user_queue_fixture() {
    // The world holds the runners and the runners hold the world: break the
    // cycle, or the actor system would wait for them forever.
    for (auto& r : w->runners)
      anon_send_exit(r, caf::exit_reason::user_shutdown);
    w->runners.clear();
    sched.run();
    log::set_sink(nullptr);
  }

  void grant() {
    self->send(uq, run_atom::value);
    sched.run();
  }

  void release_runner(size_t i) {
    CAF_REQUIRE_LESS(i, w->runners.size());
    self->send(w->runners[i], step_atom::value);
    sched.run();
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(user_queue_tests, user_queue_fixture)

CAF_TEST(a turn dequeues with the user and lease token and hands the job to a runner) {
  w->tickets = {ticket("j1")};
  self->send(uq, run_atom::value);
  expect((run_atom), from(self).to(uq));
  expect((recover_atom, std::string, std::string), from(uq).to(status).with(_, "alice", "tok"));
  expect((int32_t), from(status).to(uq).with(0));
  expect((dequeue_atom, std::string, std::string), from(uq).to(status).with(_, "alice", "tok"));
  expect((job_ticket), from(status).to(uq).with(ticket("j1")));
  CAF_REQUIRE_EQUAL(w->runners.size(), 1u);
  expect((run_atom, job_ticket), from(uq).to(w->runners[0]).with(_, ticket("j1")));
  CAF_CHECK(w->events.empty());
}

CAF_TEST(the user_queue never dequeues a second job before the first runner answered) {
  w->tickets = {ticket("j1"), ticket("j2")};
  grant();
  CAF_CHECK_EQUAL(w->dequeues.size(), 1u);
  CAF_CHECK_EQUAL(w->running, 1);
  // A second grant while the job runs is a scheduler bug: ignored.
  grant();
  CAF_CHECK_EQUAL(w->dequeues.size(), 1u);
  CAF_CHECK_EQUAL(w->runners.size(), 1u);
  CAF_CHECK(w->events.empty());
  release_runner(0);
  CAF_CHECK_EQUAL(w->events, strings{"done alice j1 done 2"});
  grant();
  CAF_CHECK_EQUAL(w->dequeues.size(), 2u);
  CAF_CHECK_EQUAL(w->runners.size(), 2u);
  release_runner(1);
  grant();
  CAF_CHECK_EQUAL(w->events,
                  (strings{"done alice j1 done 2", "done alice j2 done 2", "idle alice"}));
  CAF_CHECK_EQUAL(w->ran, (strings{"j1", "j2"}));
  CAF_CHECK_EQUAL(w->dequeues.size(), 3u);
  CAF_CHECK_EQUAL(w->dequeues_while_running, 0);
}

CAF_TEST(the summary reaches the scheduler unchanged) {
  w->tickets = {ticket("j1")};
  grant();
  self->send(w->runners[0], step_atom::value);
  expect((step_atom), from(self).to(w->runners[0]));
  expect((job_summary), from(w->runners[0]).to(uq).with(job_summary{"j1", "done", 2, 10}));
  expect((done_atom, std::string, job_summary),
         from(uq).to(scheduler).with(_, "alice", job_summary{"j1", "done", 2, 10}));
}

CAF_TEST(an empty queue ends the turn with idle and spawns no runner) {
  grant();
  CAF_CHECK_EQUAL(w->events, strings{"idle alice"});
  CAF_CHECK(w->runners.empty());
}

CAF_TEST(a dequeue error ends the turn with idle and the next turn works) {
  w->tickets = {ticket("j1")};
  w->dequeue_error = make_error(ec::lease_lost, "lease of user alice is not held");
  grant();
  CAF_CHECK_EQUAL(w->events, strings{"idle alice"});
  CAF_CHECK(w->runners.empty());
  w->dequeue_error = caf::error{};
  grant();
  CAF_CHECK_EQUAL(w->runners.size(), 1u);
  release_runner(0);
  CAF_CHECK_EQUAL(w->events, (strings{"idle alice", "done alice j1 done 2"}));
}

CAF_TEST(a runner error ends the turn with done and an empty status) {
  w->tickets = {ticket("j1"), ticket("j2")};
  w->runner_error = make_error(ec::pg_connection_lost, "runner died");
  grant();
  CAF_CHECK_EQUAL(w->events, strings{"done alice j1  0"});
  // Not wedged: the next turn runs the next job.
  w->runner_error = caf::error{};
  grant();
  CAF_CHECK_EQUAL(w->ran, (strings{"j1", "j2"}));
  CAF_CHECK_EQUAL(w->running, 1);
}

CAF_TEST(the first turn recovers orphaned work before it dequeues and later turns do not) {
  w->tickets = {ticket("j1")};
  grant();
  CAF_CHECK_EQUAL(w->asked, (strings{"recover alice tok", "dequeue alice tok"}));
  release_runner(0);
  grant();
  grant();
  CAF_CHECK_EQUAL(w->asked, (strings{"recover alice tok", "dequeue alice tok",
                                     "dequeue alice tok", "dequeue alice tok"}));
  CAF_CHECK_EQUAL(w->events, (strings{"done alice j1 done 2", "idle alice", "idle alice"}));
}

CAF_TEST(a recover error other than a lost lease is logged and the turn still dequeues) {
  w->tickets = {ticket("j1")};
  w->recover_error = make_error(ec::redis_unavailable, "connection refused");
  grant();
  CAF_CHECK_EQUAL(w->asked, (strings{"recover alice tok", "dequeue alice tok"}));
  CAF_CHECK_EQUAL(w->ran, strings{"j1"});
  CAF_CHECK(log_lines.str().find("recover failed") != std::string::npos);
}

CAF_TEST(a lease lost during recover ends the first turn with idle and dequeues nothing) {
  w->tickets = {ticket("j1")};
  w->recover_error = make_error(ec::lease_lost, "lease of user alice is not held");
  grant();
  CAF_CHECK_EQUAL(w->asked, strings{"recover alice tok"});
  CAF_CHECK_EQUAL(w->events, strings{"idle alice"});
  CAF_CHECK(w->runners.empty());
}

CAF_TEST(the production factory spawns a user_queue for the user and lease token given) {
  auto wp = w;
  auto factory = make_user_queue_factory(status, [wp](caf::actor_system& s) {
    auto r = s.spawn(mock_runner, wp);
    wp->runners.push_back(r);
    return job_runner_actor{r};
  });
  auto bob = factory(sys, "bob", "tok-b", scheduler);
  self->send(bob, run_atom::value);
  sched.run();
  CAF_REQUIRE_EQUAL(w->dequeues.size(), 1u);
  CAF_CHECK_EQUAL(w->dequeues[0].first, "bob");
  CAF_CHECK_EQUAL(w->dequeues[0].second, "tok-b");
  CAF_CHECK_EQUAL(w->events, strings{"idle bob"});
}

CAF_TEST_FIXTURE_SCOPE_END()
