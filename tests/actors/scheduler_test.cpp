// The scheduler (actors/scheduler.hpp) on CAF's test coordinator with the
// in-memory fake_coordination, a mock canceller and mock user_queues. A mock
// user_queue answers `run` with `idle` when its user has no job left;
// otherwise it takes one job and "runs" it until the test ends it with
// finish_oldest() (which sends the `done` the real user_queue would send), so
// several users run at once and capacity matters.
#define CAF_SUITE actors.scheduler
#include "tests/actors/fixture.hpp"

#include <deque>
#include <map>
#include <memory>
#include <sstream>
#include <utility>
#include <vector>

#include "actors/scheduler.hpp"
#include "src/config/settings.hpp"
#include "src/log/log.hpp"
#include "tests/actors/fake_coordination.hpp"

using namespace batchq;
using namespace std::chrono_literals;

namespace {

using strings = std::vector<std::string>;

/// What the mocks share with the test.
struct world {
  /// Jobs left in each user's queue.
  std::map<std::string, int> jobs;
  /// Users whose mock user_queue runs a job now, oldest first.
  std::deque<std::string> holding;
  /// Mock user_queues alive.
  int alive = 0;
  /// Users a user_queue was created for, in order.
  strings spawned;
  /// `stop` messages the mock canceller received.
  std::vector<std::pair<std::string, stop_reason>> stops;
  /// Users whose mock user_queue received `run`, in order.
  strings runs;
};

user_queue_actor::behavior_type mock_user_queue(user_queue_actor::pointer self,
                                                std::shared_ptr<world> w, std::string user,
                                                scheduler_actor scheduler) {
  ++w->alive;
  self->attach_functor([w] { --w->alive; });
  return {
    [=](run_atom) {
      w->runs.push_back(user);
      auto& n = w->jobs[user];
      if (n == 0) {
        self->send(scheduler, idle_atom::value, user);
        return;
      }
      --n;
      w->holding.push_back(user);
    },
  };
}

canceller_actor::behavior_type mock_canceller(canceller_actor::pointer, std::shared_ptr<world> w) {
  return {
    [=](cancel_atom, const std::string& id, const std::string&) {
      return cancel_result{id, "cancelled"};
    },
    [=](remote_cancel_atom, const std::string&) { return false; },
    [=](stop_atom, const std::string& user, stop_reason why) { w->stops.emplace_back(user, why); },
    [=](final_atom, const std::string&, const std::string&) {},
  };
}

struct scheduler_fixture : test::actor_fixture {
  std::shared_ptr<world> w = std::make_shared<world>();
  std::shared_ptr<test::fake_coordination> coord = std::make_shared<test::fake_coordination>();
  canceller_actor canceller;
  scheduler_actor scheduler;
  size_t capacity = 0;
  const std::chrono::milliseconds sweep_interval = 7500ms;
  /// Runs in the factory, right after the lease was taken (tests inject faults).
  std::function<void()> on_queue_created;
  std::ostringstream log_lines;

  scheduler_fixture() { log::set_sink(&log_lines); }

  ~scheduler_fixture() {
    // The scheduler's tick re-arms forever: stop it before the base fixture's
    // run(), which fires every pending timeout until none is left.
    anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
    anon_send_exit(canceller, caf::exit_reason::user_shutdown);
    sched.run();
    log::set_sink(nullptr);
  }

  void start(int64_t cap) {
    capacity = static_cast<size_t>(cap);
    canceller = sys.spawn(mock_canceller, w);
    scheduler_settings cfg;
    cfg.capacity = cap;
    cfg.lease_ttl = 5s;
    cfg.shutdown_grace = 10s;
    // Off the 1 s tick grid: a test can reach a sweep without a tick at the same instant.
    cfg.sweep_interval = sweep_interval;
    auto wp = w;
    auto factory = [this, wp](caf::actor_system& s, const std::string& user, const std::string&,
                              scheduler_actor sch) {
      wp->spawned.push_back(user);
      if (on_queue_created)
        on_queue_created();
      return s.spawn(mock_user_queue, wp, user, sch);
    };
    scheduler = spawn_scheduler(sys, cfg, coord, canceller, factory, false);
    sched.run();
  }

  /// Moves the clock to the next sweep (one sweep_interval; ticks due on the
  /// way fire too) and runs what it triggered.
  void next_sweep() {
    advance_time(sweep_interval);
    run_checked();
  }

  /// Consumes every pending message (no timeouts), checking after each one
  /// that no more users run than the capacity allows.
  void run_checked() {
    while (sched.try_run_once()) {
      CAF_CHECK_LESS_OR_EQUAL(w->holding.size(), capacity);
      CAF_CHECK_LESS_OR_EQUAL(coord->slots_held(), capacity);
    }
  }

  void wants(const std::string& user) { self->send(scheduler, wants_atom::value, user); }

  /// Ends the job that has been running longest, as its user_queue would.
  void finish_oldest(const std::string& status = "done") {
    CAF_REQUIRE(!w->holding.empty());
    auto user = w->holding.front();
    w->holding.pop_front();
    job_summary s;
    s.job_id = "job-of-" + user;
    s.status = status;
    s.statements_run = 1;
    self->send(scheduler, done_atom::value, user, s);
  }

  /// Runs every queued job to its end, oldest first.
  void finish_all() {
    run_checked();
    while (!w->holding.empty()) {
      finish_oldest();
      run_checked();
    }
  }

  scheduler_stats stats() {
    auto h = self->request(scheduler, caf::infinite, stats_atom::value);
    sched.run();
    scheduler_stats out;
    h.receive([&](scheduler_stats& s) { out = std::move(s); },
              [&](caf::error& e) { CAF_FAIL("stats failed: " << sys.render(e)); });
    return out;
  }

  /// Serves A (3 jobs), B (2) and C (1), all wanting at once, to the end.
  strings serve_abc(int64_t cap) {
    start(cap);
    w->jobs = {{"A", 3}, {"B", 2}, {"C", 1}};
    wants("A");
    wants("B");
    wants("C");
    finish_all();
    auto s = stats();
    CAF_CHECK(s.waiting.empty());
    CAF_CHECK(s.running.empty());
    CAF_CHECK(coord->leases.empty());
    CAF_CHECK_EQUAL(coord->slots_held(), 0u);
    CAF_CHECK_EQUAL(w->alive, 0);
    CAF_CHECK_EQUAL(w->jobs["A"] + w->jobs["B"] + w->jobs["C"], 0);
    size_t most_running = std::min<size_t>(capacity, 3); // a copy: min returns a reference
    CAF_CHECK_EQUAL(coord->max_slots["unknown"], most_running);
    return s.grants;
  }
};

const strings fair_order{"A", "B", "C", "A", "B", "A"};

} // namespace

CAF_TEST_FIXTURE_SCOPE(scheduler_tests, scheduler_fixture)

CAF_TEST(at capacity 1 users A B C are served A B C A B A) {
  CAF_CHECK_EQUAL(serve_abc(1), fair_order);
}

CAF_TEST(at capacity 2 users A B C are served A B C A B A) {
  CAF_CHECK_EQUAL(serve_abc(2), fair_order);
}

CAF_TEST(with unlimited capacity users A B C are served A B C A B A) {
  CAF_CHECK_EQUAL(serve_abc(1000), fair_order);
}

CAF_TEST(capacity is counted per database host) {
  coord->hosts = {{"A", "h1"}, {"B", "h2"}, {"C", "h1"}};
  start(1);
  w->jobs = {{"A", 1}, {"B", 1}, {"C", 1}};
  wants("A");
  wants("B");
  wants("C");
  sched.run();
  auto s = stats();
  CAF_CHECK_EQUAL(s.running, (strings{"A", "B"}));
  CAF_CHECK_EQUAL(s.waiting, strings{"C"});
  CAF_CHECK_EQUAL(coord->slots["h1"].size(), 1u);
  CAF_CHECK_EQUAL(coord->slots["h2"].size(), 1u);
  finish_oldest(); // A frees h1's slot: C runs
  sched.run();
  CAF_CHECK_EQUAL(stats().running, (strings{"B", "C"}));
}

CAF_TEST(the database host of a user is looked up once while the user is served) {
  start(1);
  w->jobs = {{"A", 3}};
  wants("A");
  finish_all();
  CAF_CHECK_EQUAL(stats().grants, (strings{"A", "A", "A"}));
  CAF_CHECK_EQUAL(coord->database_host_calls, 1);
}

CAF_TEST(a user that wants service again while served is not leased twice) {
  start(1);
  w->jobs = {{"A", 2}};
  wants("A");
  wants("A");
  sched.run();
  wants("A");
  sched.run();
  CAF_CHECK_EQUAL(coord->acquire_lease_calls, 1);
  CAF_CHECK_EQUAL(w->spawned, strings{"A"});
  finish_all();
  CAF_CHECK_EQUAL(stats().grants, (strings{"A", "A"}));
}

CAF_TEST(a user whose lease another node holds is not served) {
  start(4);
  coord->foreign = {"X"};
  w->jobs = {{"X", 1}, {"Y", 1}};
  wants("X");
  wants("Y");
  sched.run();
  CAF_CHECK_EQUAL(w->spawned, strings{"Y"});
  CAF_CHECK_EQUAL(w->holding, std::deque<std::string>{"Y"});
  auto s = stats();
  CAF_CHECK_EQUAL(s.running, strings{"Y"});
  CAF_CHECK(s.waiting.empty());
  CAF_CHECK_EQUAL(coord->leases.count("X"), 0u);
}

CAF_TEST(an idle user is released and leaves no lease slot or user_queue behind) {
  start(2);
  w->jobs = {{"A", 1}};
  wants("A");
  finish_all();
  CAF_CHECK(coord->leases.empty());
  CAF_CHECK_EQUAL(coord->slots_held(), 0u);
  CAF_CHECK_EQUAL(w->alive, 0);
  auto s = stats();
  CAF_CHECK(s.waiting.empty() && s.running.empty());
  // Served again from scratch when new jobs come.
  w->jobs["A"] = 1;
  wants("A");
  finish_all();
  CAF_CHECK_EQUAL(stats().grants, (strings{"A", "A"}));
  CAF_CHECK_EQUAL(w->spawned, (strings{"A", "A"}));
  CAF_CHECK(coord->leases.empty());
}

CAF_TEST(jobs enqueued while the lease is being released keep the user served) {
  start(1);
  w->jobs = {{"D", 1}};
  int releases = 0;
  // The first release_lease_if_idle finds a job that arrived after the last
  // dequeue (the lost wake-up the script prevents); the second finds none.
  coord->before_release_if_idle = [&](const std::string& user) {
    if (++releases == 1) {
      w->jobs[user] = 1;
      coord->queue_not_empty.insert(user);
    } else {
      coord->queue_not_empty.erase(user);
    }
  };
  wants("D");
  run_checked();
  finish_oldest(); // job 1 done; the next turn finds the queue empty
  run_checked();
  CAF_CHECK_EQUAL(releases, 1);
  // Not released: D got a new turn at once and runs the new job.
  CAF_CHECK_EQUAL(w->holding, std::deque<std::string>{"D"});
  CAF_CHECK_EQUAL(coord->leases.count("D"), 1u);
  CAF_CHECK_EQUAL(w->alive, 1);
  finish_all();
  CAF_CHECK_EQUAL(releases, 2);
  CAF_CHECK_EQUAL(stats().grants, (strings{"D", "D"}));
  CAF_CHECK(coord->leases.empty());
  CAF_CHECK_EQUAL(w->alive, 0);
}

CAF_TEST(a lease lost on renewal stops the statement of the user and drops the user) {
  start(2);
  w->jobs = {{"A", 2}, {"B", 1}};
  wants("A");
  wants("B");
  run_checked();
  CAF_REQUIRE_EQUAL(w->holding.size(), 2u);
  coord->lose("A");
  advance_time(1s); // lease_ttl / 5: the first tick
  sched.run();
  CAF_CHECK_EQUAL(w->stops.size(), 1u);
  if (!w->stops.empty()) {
    CAF_CHECK_EQUAL(w->stops[0].first, "A");
    CAF_CHECK(w->stops[0].second == stop_reason::lease_lost);
  }
  auto s = stats();
  CAF_CHECK_EQUAL(s.running, strings{"B"});
  CAF_CHECK(s.waiting.empty());
  CAF_CHECK_EQUAL(coord->slots_held(), 1u); // only B's
  CAF_CHECK_EQUAL(w->alive, 1);             // A's user_queue is gone
  // A late `done` from A's old turn changes nothing.
  self->send(scheduler, done_atom::value, std::string{"A"}, job_summary{"j", "running", 1, 0});
  sched.run();
  CAF_CHECK_EQUAL(stats().running, strings{"B"});
  CAF_CHECK_EQUAL(coord->slots_held(), 1u);
}

CAF_TEST(ticks renew every held lease and slot) {
  start(1);
  w->jobs = {{"A", 1}, {"B", 1}};
  wants("A");
  wants("B");
  run_checked();
  for (int i = 0; i < 10; ++i) {
    advance_time(1s);
    sched.run();
  }
  CAF_CHECK(w->stops.empty());
  CAF_CHECK_EQUAL(coord->leases.size(), 2u);
  CAF_CHECK_EQUAL(stats().running, strings{"A"});
}

CAF_TEST(a grant that fails on a Redis outage is retried on the next tick) {
  start(1);
  w->jobs = {{"A", 1}};
  on_queue_created = [this] { coord->down = true; };
  wants("A");
  sched.run();
  CAF_CHECK(w->holding.empty());
  coord->down = false;
  on_queue_created = nullptr;
  advance_time(1s);
  sched.run();
  CAF_CHECK_EQUAL(w->holding, std::deque<std::string>{"A"});
  finish_all();
  CAF_CHECK(coord->leases.empty());
}

CAF_TEST(a user whose lease cannot be taken during a Redis outage is served on the next wants) {
  start(1);
  w->jobs = {{"A", 1}};
  coord->down = true;
  wants("A");
  sched.run();
  CAF_CHECK(w->spawned.empty());
  coord->down = false;
  wants("A");
  finish_all();
  CAF_CHECK_EQUAL(stats().grants, strings{"A"});
}

CAF_TEST(drain with nothing running releases every lease and answers at once) {
  start(1);
  coord->hosts = {{"A", "h1"}};
  w->jobs = {{"A", 1}, {"B", 1}};
  coord->slots["h1"] = {"someone-else"}; // A's host is full: A waits
  wants("A");
  sched.run();
  CAF_REQUIRE_EQUAL(coord->leases.size(), 1u);
  auto h = self->request(scheduler, caf::infinite, drain_atom::value);
  sched.run();
  h.receive([&](const drain_report& r) { CAF_CHECK_EQUAL(r, (drain_report{0, 0})); },
            [&](caf::error& e) { CAF_FAIL(sys.render(e)); });
  CAF_CHECK(coord->leases.empty());
  CAF_CHECK_EQUAL(w->alive, 0);
  // A drained scheduler takes no new users.
  wants("B");
  sched.run();
  CAF_CHECK_EQUAL(w->spawned, strings{"A"});
}

CAF_TEST(drain waits for running jobs then stops the rest after the grace period) {
  start(2);
  w->jobs = {{"A", 1}, {"B", 1}, {"C", 1}};
  wants("A");
  wants("B");
  wants("C");
  run_checked();
  CAF_REQUIRE_EQUAL(w->holding, (std::deque<std::string>{"A", "B"}));
  auto report = std::make_shared<std::optional<drain_report>>();
  auto sch = scheduler;
  sys.spawn([=](caf::event_based_actor* s) {
    s->request(sch, caf::infinite, drain_atom::value).then([=](const drain_report& r) {
      *report = r;
    });
  });
  sched.run();
  // C, waiting, is released at once and announced to the other nodes; A and B
  // keep running.
  CAF_CHECK_EQUAL(coord->leases.count("C"), 0u);
  CAF_CHECK_EQUAL(coord->announced, strings{"C"});
  CAF_CHECK_EQUAL(coord->leases.size(), 2u);
  CAF_CHECK(!*report);
  // A finishes within the grace period; no new turn is granted.
  finish_oldest("done");
  sched.run();
  CAF_CHECK_EQUAL(coord->leases.count("A"), 0u);
  CAF_CHECK(w->holding == std::deque<std::string>{"B"});
  CAF_CHECK(w->stops.empty());
  CAF_CHECK(!*report);
  // The grace period ends: B is stopped for the drain.
  advance_time(10s);
  sched.run();
  CAF_REQUIRE_EQUAL(w->stops.size(), 1u);
  CAF_CHECK_EQUAL(w->stops[0].first, "B");
  CAF_CHECK(w->stops[0].second == stop_reason::drain);
  CAF_CHECK(!*report);
  // B's runner requeues its job and reports `pending`.
  finish_oldest("pending");
  sched.run();
  CAF_REQUIRE(*report);
  CAF_CHECK_EQUAL(**report, (drain_report{1, 1}));
  CAF_CHECK(coord->leases.empty());
  CAF_CHECK_EQUAL(coord->slots_held(), 0u);
  CAF_CHECK_EQUAL(w->alive, 0);
  CAF_CHECK_EQUAL(stats().grants, (strings{"A", "B"}));
}

CAF_TEST(drain gives up on a runner that never answers after a second grace period) {
  start(1);
  w->jobs = {{"A", 1}};
  wants("A");
  run_checked();
  auto h = self->request(scheduler, caf::infinite, drain_atom::value);
  sched.run();
  advance_time(10s);
  sched.run();
  CAF_CHECK_EQUAL(w->stops.size(), 1u);
  advance_time(10s);
  sched.run();
  h.receive([&](const drain_report& r) { CAF_CHECK_EQUAL(r, (drain_report{0, 0})); },
            [&](caf::error& e) { CAF_FAIL(sys.render(e)); });
  CAF_CHECK(coord->leases.empty());
  CAF_CHECK_EQUAL(coord->slots_held(), 0u);
}

// -- the crash sweep (SPEC §7) ---------------------------------------------------------

CAF_TEST(after one sweep interval a user reported orphaned is leased and granted a turn) {
  start(2);
  coord->orphans = {"O"};
  w->jobs = {{"O", 1}}; // e.g. the orphaned job, requeued by the recovery
  advance_time(sweep_interval - 1ms);
  run_checked();
  CAF_CHECK_EQUAL(coord->orphaned_users_calls, 0);
  CAF_CHECK(w->spawned.empty());
  advance_time(1ms);
  run_checked();
  CAF_CHECK_EQUAL(coord->orphaned_users_calls, 1);
  CAF_CHECK_EQUAL(w->spawned, strings{"O"});
  CAF_CHECK_EQUAL(w->runs, strings{"O"});
  CAF_CHECK_EQUAL(coord->leases.count("O"), 1u);
  CAF_CHECK_EQUAL(stats().running, strings{"O"});
  // The recovered job ends; the queue is then empty: the lease goes.
  coord->orphans.clear();
  finish_all();
  CAF_CHECK(coord->leases.empty());
  CAF_CHECK_EQUAL(coord->slots_held(), 0u);
  CAF_CHECK_EQUAL(w->alive, 0);
}

CAF_TEST(an orphaned user with nothing left to run after recovery is released at once) {
  start(1);
  coord->orphans = {"O", "P"};
  coord->foreign = {"P"}; // P's lease is held by a live node: not orphaned
  next_sweep();
  CAF_CHECK_EQUAL(w->spawned, strings{"O"});
  CAF_CHECK_EQUAL(w->runs, strings{"O"}); // the first run recovers, then finds no job
  CAF_CHECK(coord->leases.empty());
  CAF_CHECK_EQUAL(coord->slots_held(), 0u);
  CAF_CHECK_EQUAL(w->alive, 0);
  auto s = stats();
  CAF_CHECK(s.waiting.empty() && s.running.empty());
}

CAF_TEST(sweeps repeat every sweep interval) {
  start(1);
  next_sweep();
  next_sweep();
  CAF_CHECK_EQUAL(coord->orphaned_users_calls, 2);
  CAF_CHECK(w->spawned.empty());
  coord->orphans = {"O"};
  next_sweep();
  CAF_CHECK_EQUAL(coord->orphaned_users_calls, 3);
  CAF_CHECK_EQUAL(w->spawned, strings{"O"});
}

CAF_TEST(a user the scheduler already serves is not leased twice when a sweep reports it) {
  start(1);
  w->jobs = {{"A", 2}};
  wants("A");
  run_checked();
  CAF_REQUIRE_EQUAL(w->holding, std::deque<std::string>{"A"});
  // The lease expired in Redis (e.g. the node stalled past its TTL) and the
  // sweep comes before the tick that would notice: A looks orphaned.
  for (int i = 0; i < 7; ++i) {
    advance_time(1s);
    run_checked();
  }
  coord->lose("A");
  coord->orphans = {"A"};
  advance_time(500ms); // 7.5 s: the sweep, no tick
  run_checked();
  CAF_CHECK_EQUAL(coord->orphaned_users_calls, 1);
  CAF_CHECK_EQUAL(coord->acquire_lease_calls, 1);
  CAF_CHECK_EQUAL(w->spawned, strings{"A"});
  CAF_CHECK_EQUAL(w->alive, 1);
  CAF_CHECK(coord->leases.empty());
}

CAF_TEST(there is no sweep while draining) {
  start(1);
  w->jobs = {{"A", 1}};
  wants("A");
  run_checked();
  CAF_REQUIRE_EQUAL(w->holding, std::deque<std::string>{"A"});
  auto sch = scheduler;
  sys.spawn([=](caf::event_based_actor* s) {
    s->request(sch, caf::infinite, drain_atom::value).then([](const drain_report&) {});
  });
  run_checked();
  coord->orphans = {"O"};
  next_sweep(); // within the 10 s grace: A still runs
  CAF_CHECK_EQUAL(coord->orphaned_users_calls, 0);
  CAF_CHECK_EQUAL(w->spawned, strings{"A"});
  finish_oldest("done");
  run_checked();
  next_sweep();
  CAF_CHECK_EQUAL(coord->orphaned_users_calls, 0);
  CAF_CHECK_EQUAL(w->spawned, strings{"A"});
  CAF_CHECK_EQUAL(coord->leases.count("O"), 0u);
}

CAF_TEST(a failing orphan sweep is logged and retried at the next sweep) {
  start(1);
  coord->orphans = {"O"};
  coord->orphans_down = true;
  w->jobs = {{"O", 1}};
  next_sweep();
  CAF_CHECK_EQUAL(coord->orphaned_users_calls, 1);
  CAF_CHECK(w->spawned.empty());
  CAF_CHECK_NOT_EQUAL(log_lines.str().find("orphan sweep failed"), std::string::npos);
  coord->orphans_down = false;
  next_sweep();
  CAF_CHECK_EQUAL(coord->orphaned_users_calls, 2);
  CAF_CHECK_EQUAL(w->spawned, strings{"O"});
  CAF_CHECK_EQUAL(w->holding, std::deque<std::string>{"O"});
}

CAF_TEST(scheduler settings take the sweep interval from batch sweep-interval in seconds) {
  settings s;
  s.batch_sweep_interval = 3;
  CAF_CHECK_EQUAL(scheduler_settings::from(s).sweep_interval.count(), 3000);
}

CAF_TEST_FIXTURE_SCOPE_END()
