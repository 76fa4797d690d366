// The user_queue (actors/user_queue.hpp) on CAF's test coordinator as part of
// a node in a box: the real status actor over the fault-injecting
// fake_job_store, real job_runners over the fake SQL connector, the real
// cancel registry, a fake backend_cancel, a mock scheduler recording
// `started`/`ended` and a mock canceller recording `final`s. Each test is one
// of the interleavings the scheduling core must survive (lost replies,
// failed writes, lost leases, orphans, fences, drains), checked on the
// resulting Redis state, the statements sent and the turn report. Virtual
// clock only.
#define CAF_SUITE actors.user_queue
#include "tests/actors/fixture.hpp"

#include <memory>
#include <sstream>
#include <vector>

#include "actors/job_runner.hpp"
#include "actors/status.hpp"
#include "actors/user_queue.hpp"
#include "messages/error.hpp"
#include "src/job/job.hpp"
#include "src/job/parse.hpp"
#include "src/job/record.hpp"
#include "src/log/log.hpp"
#include "tests/actors/fake_environment.hpp"
#include "tests/actors/fake_job_store.hpp"
#include "tests/actors/fake_sql.hpp"

using namespace batchq;
using namespace std::chrono_literals;

namespace {

using strings = std::vector<std::string>;

struct heard {
  strings started;
  std::vector<turn_report> ended;
  std::vector<std::pair<std::string, std::string>> finals;
};

scheduler_actor::behavior_type mock_scheduler(scheduler_actor::pointer,
                                              std::shared_ptr<heard> h) {
  return {
    [](wants_atom, const std::string&) {},
    [=](started_atom, const std::string& user, const std::string& token) {
      h->started.push_back(user + " " + token);
    },
    [=](ended_atom, const turn_report& r) { h->ended.push_back(r); },
    [](tick_atom) {},
    [](drain_atom) { return drain_report{}; },
    [](stats_atom) { return scheduler_stats{}; },
  };
}

canceller_actor::behavior_type mock_canceller(canceller_actor::pointer, std::shared_ptr<heard> h) {
  return {
    [](cancel_atom, const std::string& id, const std::string&) {
      return cancel_result{id, "cancelled"};
    },
    [](remote_cancel_atom, const std::string&) { return false; },
    [](stop_atom, const std::string&, const std::string&, stop_reason) {},
    [=](final_atom, const std::string& id, const std::string& status) {
      h->finals.emplace_back(id, status);
    },
  };
}

/// FAKE backend_cancel: records the jobs whose backends it was asked to stop;
/// answers "still running" `still_running` times first.
struct fake_backends : ports::backend_cancel {
  strings stopped;
  int still_running = 0;
  caf::expected<int> cancel_backends_of_job(const std::string& job_id,
                                            const std::string&) override {
    stopped.push_back(job_id);
    return 1;
  }
  caf::expected<int> stop_backends_of_job(const std::string& job_id, const std::string&,
                                          std::chrono::milliseconds) override {
    stopped.push_back(job_id);
    if (still_running > 0) {
      --still_running;
      return make_error(ec::pg_statement_failed, "a statement of job " + job_id
                                                   + " is still running");
    }
    return 1;
  }
};

/// FAKE job store of a turn's runner (job_runner.hpp, "Going on"): the
/// fixture's fake store, with the runner's own turn steps counted apart from
/// the status actor's.
struct runner_store : ports::job_store {
  std::shared_ptr<test::fake_job_store> inner;
  size_t turns = 0;
  explicit runner_store(std::shared_ptr<test::fake_job_store> s) : inner(std::move(s)) {}
  caf::expected<turn_answer> turn(const turn_request& r, const field_pairs& claim,
                                  int64_t ttl) override {
    ++turns;
    return inner->turn(r, claim, ttl);
  }
  caf::expected<pending_cancel> cancel_pending(const std::string& id, const std::string& user,
                                               const field_pairs& set, int64_t ttl) override {
    return inner->cancel_pending(id, user, set, ttl);
  }
  caf::expected<field_pairs> read(const std::string& id) override { return inner->read(id); }
  caf::expected<bool> cancel_mark(const std::string& id, bool set) override {
    return inner->cancel_mark(id, set);
  }
};

struct queue_fixture : test::actor_fixture {
  std::shared_ptr<heard> h = std::make_shared<heard>();
  std::shared_ptr<test::fake_job_store> store = std::make_shared<test::fake_job_store>();
  std::shared_ptr<test::fake_environment> env = std::make_shared<test::fake_environment>();
  std::shared_ptr<test::fake_sql_connector> sql = std::make_shared<test::fake_sql_connector>();
  std::shared_ptr<fake_backends> backends = std::make_shared<fake_backends>();
  std::shared_ptr<pg::cancel_registry> registry = std::make_shared<pg::cancel_registry>();
  scheduler_actor scheduler = sys.spawn(mock_scheduler, h);
  canceller_actor canceller = sys.spawn(mock_canceller, h);
  status_actor status;
  user_queue_settings cfg;
  user_queue_deps deps;
  std::ostringstream log_lines;
  int next_id = 0;
  /// The turn's runner claims and goes on by itself (job_runner.hpp "Going
  /// on"); a test sets it with go_on_mode() before the turn starts. The whole
  /// suite runs a second time with it on (ctest actors.user_queue.going_on).
  std::shared_ptr<bool> runner_goes_on =
    std::make_shared<bool>(std::getenv("BATCHQ_TEST_RUNNER_GOES_ON") != nullptr);
  std::shared_ptr<runner_store> runners_store = std::make_shared<runner_store>(store);

  queue_fixture() {
    log::set_sink(&log_lines);
    status_settings scfg;
    scfg.node_id = "node-a";
    status = spawn_status(sys, scfg, store, false);
    env->passwords[{"alice", "role"}] = "pw";
    cfg.detached_helpers = false;
    deps.status = status;
    deps.canceller = canceller;
    deps.backends = backends;
    auto st = status;
    auto e = env;
    auto s = sql;
    auto reg = registry;
    auto js = runners_store;
    auto goes_on = runner_goes_on;
    deps.runners_go_on = *runner_goes_on;
    deps.make_runner = [=](caf::actor_system& sys) {
      runner_settings rs;
      rs.node_id = "node-a";
      if (*goes_on) { // the runner claims and writes its turn's steps itself (same fake store)
        rs.store = js;
        rs.rules.node_id = "node-a";
      }
      return spawn_job_runner(sys, rs, st, e, s, reg, false);
    };
    sched.run();
  }

  ~queue_fixture() { log::set_sink(nullptr); }

  /// The runners claim and go on by themselves from the next turn on.
  void go_on_mode() {
    *runner_goes_on = true;
    deps.runners_go_on = true;
  }

  /// A pending job of alice whose single step is `sql`, queued.
  std::string add_job(const std::string& sql_text) {
    auto id = "j" + std::to_string(++next_id);
    auto req = job::parse_request(R"({"query": [")" + sql_text + R"("]})", "application/json", "");
    CAF_REQUIRE(static_cast<bool>(req));
    auto j = job::make_job(*req, id, "alice", {"db", "5432", "alice_db", "role", std::nullopt},
                           std::chrono::system_clock::now());
    auto rec = job::encode(j);
    store->add_job(id, field_pairs(rec.begin(), rec.end()));
    return id;
  }

  /// Turns `id` into a job another node (`node`, claim `claim`) was running
  /// when it died: out of the queue, in work in progress, its step running.
  void orphan(const std::string& id, const std::string& node, const std::string& claim) {
    auto j = job::decode(id, store->jobs[id]);
    CAF_REQUIRE(static_cast<bool>(j));
    CAF_REQUIRE(job::start(*j, std::chrono::system_clock::now()));
    auto st = job::next_statement(*j, 0);
    CAF_REQUIRE(st.has_value());
    CAF_REQUIRE(job::begin(*j, *st, std::chrono::system_clock::now()));
    j->node = node;
    auto rec = job::encode(*j);
    store->jobs[id] = field_pairs(rec.begin(), rec.end());
    store->jobs[id].emplace_back("claim", claim);
    auto& q = store->queues["alice"];
    q.erase(std::remove(q.begin(), q.end(), id), q.end());
    store->wip["alice"].push_front(id);
  }

  turn_grant grant(const std::string& token = "tok", int32_t budget = 100) {
    turn_grant g;
    g.user = "alice";
    g.token = token;
    g.host = "db";
    g.slot = "slot-" + token;
    g.capacity = 4;
    g.lease_ttl_ms = 5000;
    g.budget = budget;
    return g;
  }

  user_queue_actor start(turn_grant g) {
    auto q = spawn_user_queue(sys, cfg, std::move(g), scheduler, deps);
    self->send(q, run_atom::value);
    sched.run();
    return q;
  }

  std::string status_of(const std::string& id) { return store->get(id, "status"); }

  job::job decoded(const std::string& id) {
    auto j = job::decode(id, store->jobs[id]);
    CAF_REQUIRE(static_cast<bool>(j));
    return *j;
  }

  /// The report of the one turn that ended (REQUIRES: exactly one).
  turn_report report() {
    CAF_REQUIRE_EQUAL(h->ended.size(), 1u);
    return h->ended.front();
  }

  /// Lets retry timers fire until nothing is left to do (bounded).
  void settle_timers(int rounds = 500) {
    for (int i = 0; i < rounds && sched.has_pending_timeout(); ++i) {
      sched.trigger_timeout();
      sched.run();
    }
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(user_queue_tests, queue_fixture)

CAF_TEST(a turn runs the users jobs in order and releases the lease when the queue is empty) {
  auto a = add_job("A");
  auto b = add_job("B");
  start(grant());
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"A", "B"}));
  CAF_CHECK_EQUAL(status_of(a), "done");
  CAF_CHECK_EQUAL(status_of(b), "done");
  auto r = report();
  CAF_CHECK_EQUAL(to_string(r.why), std::string{"idle"});
  CAF_CHECK_EQUAL(r.jobs, 2);
  CAF_CHECK_EQUAL(r.finished, 2);
  CAF_CHECK_EQUAL(r.statements_run, 2);
  CAF_CHECK(r.carry.empty());
  CAF_CHECK_EQUAL(h->started, strings{"alice tok"});
  CAF_CHECK_EQUAL(store->leases.count("alice"), 0u);
  CAF_CHECK_EQUAL(store->slots_held(), 0u);
  CAF_CHECK_EQUAL(h->finals.size(), 2u);
  // One step per job: A's end is written in the step that claims B.
  CAF_CHECK_EQUAL(store->turns(turn_part::next), 3u); // claim A, A done + claim B, B done + empty
  // Going on (job_runner.hpp), the runner sends all three steps itself.
  CAF_CHECK_EQUAL(runners_store->turns, *runner_goes_on ? 3u : 0u);
}

CAF_TEST(a turn with a budget of two gives the slot back after two jobs) {
  add_job("A");
  add_job("B");
  auto c = add_job("C");
  start(grant("tok", 2));
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"A", "B"}));
  auto r = report();
  CAF_CHECK_EQUAL(to_string(r.why), std::string{"released"});
  CAF_CHECK_EQUAL(r.queue_length, 1);
  CAF_CHECK_EQUAL(status_of(c), "pending");
  CAF_CHECK_EQUAL(store->leases.count("alice"), 0u);
  CAF_CHECK_EQUAL(store->published, strings{"alice"}); // after the release
  CAF_CHECK_EQUAL(store->turns(turn_part::release), 1u);
  // Going on: claim A, A + claim B, B + release.
  CAF_CHECK_EQUAL(runners_store->turns, *runner_goes_on ? 3u : 0u);
}

CAF_TEST(a lost claim reply is retried and answers the same job never the next one) {
  auto a = add_job("A");
  auto b = add_job("B");
  store->lose_reply_next = 1; // the claim of A happens, its reply is lost
  start(grant());
  CAF_CHECK(sql->script->statements.empty());
  settle_timers();
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"A", "B"}));
  CAF_CHECK_EQUAL(status_of(a), "done");
  CAF_CHECK_EQUAL(status_of(b), "done");
  CAF_CHECK_EQUAL(to_string(report().why), std::string{"idle"});
}

CAF_TEST(a final write that fails is retried while the lease is held and the next job waits) {
  auto a = add_job("A");
  auto b = add_job("B");
  store->before_turn = [this, a](const turn_request& r) {
    if (!r.write.empty() && r.write[0].job_id == a && r.write[0].kind == write_kind::final
        && store->fail_next == 0 && !store->has(a, "failed_once")) {
      store->jobs[a].emplace_back("failed_once", "1");
      store->fail_next = 1; // this very call fails before Redis ran it
    }
  };
  start(grant());
  CAF_CHECK_EQUAL(sql->script->sqls(), strings{"A"}); // B not yet: A is not written
  CAF_CHECK_EQUAL(status_of(a), "running");
  CAF_CHECK_EQUAL(status_of(b), "pending");
  settle_timers();
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"A", "B"}));
  CAF_CHECK_EQUAL(status_of(a), "done");
  CAF_CHECK_EQUAL(status_of(b), "done");
  CAF_CHECK_EQUAL(report().finished, 2);
}

CAF_TEST(a final write whose reply was lost is applied once and the same next job runs) {
  auto a = add_job("A");
  auto b = add_job("B");
  auto c = add_job("C");
  store->before_turn = [this, a](const turn_request& r) {
    if (!r.write.empty() && r.write[0].job_id == a && !store->has(a, "lost_once")) {
      store->jobs[a].emplace_back("lost_once", "1");
      store->lose_reply_next = 1;
    }
  };
  start(grant());
  settle_timers();
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"A", "B", "C"}));
  for (auto id : {a, b, c})
    CAF_CHECK_EQUAL(status_of(id), "done");
  CAF_CHECK_EQUAL(report().finished, 3);
  CAF_CHECK_EQUAL(h->finals.size(), 3u);
}

CAF_TEST(a lease lost at the final write ends the turn fenced carrying the true state) {
  auto a = add_job("A");
  auto b = add_job("B");
  store->before_turn = [this, a](const turn_request& r) {
    if (!r.write.empty() && r.write[0].job_id == a && r.write[0].kind == write_kind::final)
      store->expire("alice"); // Redis let the lease go (e.g. it was away too long)
  };
  start(grant("tok1"));
  auto r = report();
  CAF_CHECK_EQUAL(to_string(r.why), std::string{"fenced"});
  CAF_REQUIRE_EQUAL(r.carry.size(), 1u);
  CAF_CHECK_EQUAL(r.carry[0].job_id, a);
  CAF_CHECK_EQUAL(r.carry[0].claim, "tok1");
  CAF_CHECK_EQUAL(r.carry[0].status, "done");
  CAF_CHECK_EQUAL(status_of(a), "running"); // nothing more was written
  CAF_CHECK_EQUAL(status_of(b), "pending");
  // The next turn on this node settles A with the truth, then runs B.
  store->before_turn = nullptr;
  h->ended.clear();
  auto g = grant("tok2");
  g.carry = r.carry;
  start(g);
  CAF_CHECK(backends->stopped.empty()); // its own job: no backend to stop
  CAF_CHECK_EQUAL(status_of(a), "done");
  CAF_CHECK(!store->has(a, "failed_reason"));
  CAF_CHECK_EQUAL(status_of(b), "done");
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"A", "B"})); // A never ran twice
  CAF_CHECK(report().carry.empty());
}

CAF_TEST(the next turn takes over the lease its fenced turn still holds in redis) {
  auto a = add_job("A");
  auto b = add_job("B");
  user_queue_actor q;
  sql->script->answers["A"] = test::fake_answer::hook([&] {
    registry->cancel_user("alice", "tok1", stop_reason::lease_lost);
    self->send(q, fence_atom::value, std::string{"tok1"});
  });
  q = spawn_user_queue(sys, cfg, grant("tok1"), scheduler, deps);
  self->send(q, run_atom::value);
  sched.run();
  auto r = report();
  // The renewals had landed after all: Redis still gives the lease to tok1.
  CAF_CHECK_EQUAL(store->leases["alice"], "tok1");
  sql->script->answers.erase("A");
  h->ended.clear();
  auto g = grant("tok2");
  g.carry = r.carry;
  g.inherit = "tok1";
  start(g);
  CAF_CHECK_EQUAL(to_string(report().why), std::string{"idle"});
  CAF_CHECK_EQUAL(status_of(a), "done");
  CAF_CHECK(!store->has(a, "failed_reason"));
  CAF_CHECK_EQUAL(status_of(b), "done");
  CAF_CHECK(backends->stopped.empty());
}

CAF_TEST(a claim answered after the fence is carried and put back untouched by the next turn) {
  auto a = add_job("A");
  auto b = add_job("B");
  // The claim lands in Redis but its answer arrives only after the fence
  // (as the scheduler fences a turn: its flags first, then the message).
  user_queue_actor q;
  auto flags = std::make_shared<turn_flags>();
  store->before_turn = [&](const turn_request&) {
    flags->go_on = false;
    flags->fenced = true;
    self->send(q, fence_atom::value, std::string{"tok1"});
  };
  q = spawn_user_queue(sys, cfg, grant("tok1"), scheduler, deps, flags);
  self->send(q, run_atom::value);
  sched.run();
  store->before_turn = nullptr;
  auto r = report();
  CAF_CHECK_EQUAL(to_string(r.why), std::string{"fenced"});
  CAF_REQUIRE_EQUAL(r.carry.size(), 1u);
  CAF_CHECK_EQUAL(r.carry[0].job_id, a);
  CAF_CHECK(sql->script->statements.empty());
  CAF_CHECK_EQUAL(status_of(a), "running"); // claimed, never run
  h->ended.clear();
  auto g = grant("tok2");
  g.carry = r.carry;
  g.inherit = "tok1";
  start(g);
  CAF_CHECK(backends->stopped.empty()); // its own claim: no backend to stop, not lost
  CAF_CHECK(!store->has(a, "failed_reason"));
  CAF_CHECK_EQUAL(status_of(a), "done");
  CAF_CHECK_EQUAL(status_of(b), "done");
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"A", "B"}));
}

CAF_TEST(an orphan of a dead node is failed as lost only after its backends are stopped) {
  auto a = add_job("A");
  auto b = add_job("B");
  orphan(a, "node-dead", "dead-token");
  backends->still_running = 2; // the old statement takes a while to go
  start(grant());
  CAF_CHECK_EQUAL(h->started, strings{"alice tok"});
  CAF_CHECK_EQUAL(backends->stopped, strings{a});
  CAF_CHECK(sql->script->statements.empty()); // B waits
  settle_timers();
  CAF_CHECK_EQUAL(backends->stopped, strings({a, a, a}));
  CAF_CHECK_EQUAL(status_of(a), "failed");
  CAF_CHECK_EQUAL(decoded(a).failed_reason.value_or(""),
                  "job interrupted: node node-dead was lost while running it");
  CAF_CHECK_EQUAL(sql->script->sqls(), strings{"B"});
  CAF_CHECK_EQUAL(status_of(b), "done");
}

CAF_TEST(an orphan its user asked to cancel ends cancelled rather than lost) {
  auto a = add_job("A");
  auto b = add_job("B");
  orphan(a, "node-dead", "dead-token");
  store->cancel_marks.insert(a); // the user's DELETE came while node-dead went
  start(grant());
  settle_timers();
  CAF_CHECK_EQUAL(backends->stopped.front(), a);
  CAF_CHECK_EQUAL(status_of(a), "cancelled");
  CAF_CHECK_EQUAL(job::to_string(decoded(a).steps[0].status), std::string{"cancelled"});
  CAF_CHECK(!decoded(a).failed_reason);
  CAF_CHECK_EQUAL(sql->script->sqls(), strings{"B"});
  CAF_CHECK_EQUAL(status_of(b), "done");
}

CAF_TEST(a simple job writes no progress: its claim started its step) {
  auto id = "j" + std::to_string(++next_id);
  auto req = job::parse_request(R"({"query": "S"})", "application/json", "");
  CAF_REQUIRE(static_cast<bool>(req));
  auto j = job::make_job(*req, id, "alice", {"db", "5432", "alice_db", "role", std::nullopt},
                         std::chrono::system_clock::now());
  auto rec = job::encode(j);
  store->add_job(id, field_pairs(rec.begin(), rec.end()));
  auto multi = add_job("M"); // a job of steps: its begin is written
  start(grant());
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"S", "M"}));
  CAF_CHECK_EQUAL(status_of(id), "done");
  CAF_CHECK_EQUAL(status_of(multi), "done");
  auto progress_of = [&](const std::string& job) {
    int n = 0;
    for (auto& c : store->calls)
      for (auto& w : c.request.write)
        if (w.job_id == job && w.kind == write_kind::progress)
          ++n;
    return n;
  };
  CAF_CHECK_EQUAL(progress_of(id), 0);
  CAF_CHECK_EQUAL(progress_of(multi), 1);
  CAF_CHECK_EQUAL(store->get(id, "step_status"), "done");
}

CAF_TEST(an orphan whose node is still registered and wrote it just now is left to that node) {
  auto a = add_job("A");
  add_job("B");
  orphan(a, "node-b", "b-token");
  store->live_nodes = {"node-b"};
  start(grant());
  auto r = report();
  CAF_CHECK_EQUAL(to_string(r.why), std::string{"busy"});
  CAF_CHECK(backends->stopped.empty());
  CAF_CHECK(sql->script->statements.empty());
  CAF_CHECK_EQUAL(status_of(a), "running");
  CAF_CHECK_EQUAL(store->get(a, "claim"), "b-token");
  CAF_CHECK_EQUAL(store->leases.count("alice"), 0u); // given back for node-b to take
}

CAF_TEST(an orphan of a registered node that wrote it long ago is left to it from the first sighting) {
  // A long statement of a slow but live node: its last write is old, but
  // this node has only just found its lease gone.
  auto a = add_job("A");
  orphan(a, "node-b", "b-token");
  store->set(a, "updated_at", "2020-01-01T00:00:00.000Z");
  store->live_nodes = {"node-b"};
  auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  start(grant());
  auto r = report();
  CAF_CHECK_EQUAL(to_string(r.why), std::string{"busy"});
  CAF_CHECK_EQUAL(status_of(a), "running");
  CAF_CHECK(backends->stopped.empty());
  CAF_REQUIRE_EQUAL(r.deferred.size(), 1u);
  CAF_CHECK_EQUAL(r.deferred[0].job_id, a);
  CAF_CHECK_EQUAL(r.deferred[0].claim, "b-token");
  CAF_CHECK(r.deferred[0].since_ms >= before);
}

CAF_TEST(an orphan first seen longer ago than the window is recovered although its node is registered) {
  auto a = add_job("A");
  orphan(a, "node-b", "b-token");
  store->set(a, "updated_at", "2020-01-01T00:00:00.000Z");
  store->live_nodes = {"node-b"};
  auto g = grant();
  auto long_ago = std::chrono::duration_cast<std::chrono::milliseconds>(
                    (std::chrono::system_clock::now() - std::chrono::hours{1}).time_since_epoch())
                    .count();
  g.deferred = {orphan_sighting{a, "b-token", long_ago}};
  start(g);
  CAF_CHECK_EQUAL(backends->stopped, strings{a});
  CAF_CHECK_EQUAL(status_of(a), "failed");
}

CAF_TEST(an orphan of a registered node that has not written it for long is recovered) {
  cfg.defer_window = std::chrono::milliseconds{0};
  auto a = add_job("A");
  orphan(a, "node-b", "b-token");
  store->live_nodes = {"node-b"};
  start(grant());
  CAF_CHECK_EQUAL(backends->stopped, strings{a});
  CAF_CHECK_EQUAL(status_of(a), "failed");
}

CAF_TEST(with on node loss requeue an orphan resumes at its interrupted step before later jobs) {
  cfg.on_node_loss = job::node_loss_mode::requeue;
  auto a = add_job("A");
  auto b = add_job("B");
  orphan(a, "node-dead", "dead-token");
  start(grant());
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"A", "B"}));
  CAF_CHECK_EQUAL(status_of(a), "done");
  CAF_CHECK_EQUAL(status_of(b), "done");
}

CAF_TEST(a fence while a statement runs stops it writes nothing more and carries the state) {
  auto a = add_job("A");
  add_job("B");
  user_queue_actor q;
  sql->script->answers["A"] = test::fake_answer::hook([&] {
    // The scheduler's fence: the canceller fires the turn's tokens, the
    // user_queue hears `fence`.
    registry->cancel_user("alice", "tok", stop_reason::lease_lost);
    self->send(q, fence_atom::value, std::string{"tok"});
  });
  q = spawn_user_queue(sys, cfg, grant(), scheduler, deps);
  self->send(q, run_atom::value);
  sched.run();
  auto r = report();
  CAF_CHECK_EQUAL(to_string(r.why), std::string{"fenced"});
  CAF_REQUIRE_EQUAL(r.carry.size(), 1u);
  CAF_CHECK_EQUAL(r.carry[0].job_id, a);
  CAF_CHECK_EQUAL(r.carry[0].status, "running");
  CAF_CHECK_EQUAL(status_of(a), "running");
  CAF_CHECK_EQUAL(sql->script->sqls(), strings{"A"});
  auto turns_before = store->calls.size();
  settle_timers();
  CAF_CHECK_EQUAL(store->calls.size(), turns_before); // nothing sent after the fence
}

CAF_TEST(the carried state of a stopped statement makes it run again on the next turn) {
  auto a = add_job("A");
  user_queue_actor q;
  bool first = true;
  sql->script->answers["A"] = test::fake_answer::hook([&] {
    if (!first)
      return;
    first = false;
    registry->cancel_user("alice", "tok1", stop_reason::lease_lost);
    self->send(q, fence_atom::value, std::string{"tok1"});
  });
  q = spawn_user_queue(sys, cfg, grant("tok1"), scheduler, deps);
  self->send(q, run_atom::value);
  sched.run();
  auto r = report();
  store->expire("alice"); // the fenced lease runs out in Redis
  h->ended.clear();
  auto g = grant("tok2");
  g.carry = r.carry;
  start(g);
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"A", "A"})); // stopped, so run again
  CAF_CHECK_EQUAL(status_of(a), "done");
}

CAF_TEST(messages for another turn are ignored) {
  add_job("A");
  user_queue_actor q;
  sql->script->answers["A"] = test::fake_answer::hook([&] {
    self->send(q, fence_atom::value, std::string{"old-token"});
    self->send(q, stop_atom::value, std::string{"old-token"});
    self->send(q, yield_atom::value, std::string{"old-token"});
  });
  add_job("B");
  q = spawn_user_queue(sys, cfg, grant(), scheduler, deps);
  self->send(q, run_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"A", "B"}));
  CAF_CHECK_EQUAL(to_string(report().why), std::string{"idle"});
}

CAF_TEST(a yield makes the current job the last one of the turn) {
  add_job("A");
  auto b = add_job("B");
  user_queue_actor q;
  // As the scheduler yields a turn: the turn's flags first (a runner that goes
  // on by itself reads them), then the message.
  auto flags = std::make_shared<turn_flags>();
  sql->script->answers["A"] = test::fake_answer::hook([&] {
    flags->go_on = false;
    self->send(q, yield_atom::value, std::string{"tok"});
  });
  q = spawn_user_queue(sys, cfg, grant(), scheduler, deps, flags);
  self->send(q, run_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(sql->script->sqls(), strings{"A"});
  auto r = report();
  CAF_CHECK_EQUAL(to_string(r.why), std::string{"released"});
  CAF_CHECK_EQUAL(r.queue_length, 1);
  CAF_CHECK_EQUAL(status_of(b), "pending");
}

CAF_TEST(a drain stop requeues the running job at the head releases and publishes) {
  auto a = add_job("A");
  add_job("B");
  user_queue_actor q;
  sql->script->answers["A"] = test::fake_answer::hook([&] {
    registry->cancel_user("alice", "tok", stop_reason::drain);
    self->send(q, stop_atom::value, std::string{"tok"});
  });
  q = spawn_user_queue(sys, cfg, grant(), scheduler, deps);
  self->send(q, run_atom::value);
  sched.run();
  auto r = report();
  CAF_CHECK_EQUAL(to_string(r.why), std::string{"released"});
  CAF_CHECK_EQUAL(r.requeued, 1);
  CAF_CHECK_EQUAL(r.queue_length, 2);
  CAF_CHECK_EQUAL(status_of(a), "pending");
  CAF_CHECK_EQUAL(store->queues["alice"].front(), a);
  CAF_CHECK(store->wip.count("alice") == 0);
  CAF_CHECK_EQUAL(store->leases.count("alice"), 0u);
  CAF_CHECK_EQUAL(store->published, strings{"alice"});
  CAF_CHECK_EQUAL(h->finals.back().second, "pending");
}

CAF_TEST(a drain requeue that fails is retried until it lands) {
  auto a = add_job("A");
  user_queue_actor q;
  sql->script->answers["A"] = test::fake_answer::hook([&] {
    registry->cancel_user("alice", "tok", stop_reason::drain);
    self->send(q, stop_atom::value, std::string{"tok"});
    store->fail_next = 3;
  });
  q = spawn_user_queue(sys, cfg, grant(), scheduler, deps);
  self->send(q, run_atom::value);
  sched.run();
  CAF_CHECK(h->ended.empty());
  settle_timers();
  CAF_CHECK_EQUAL(report().requeued, 1);
  CAF_CHECK_EQUAL(status_of(a), "pending");
}

CAF_TEST(another node holding the lease ends the turn busy and the carry stays) {
  add_job("A");
  store->steal("alice");
  auto g = grant();
  g.carry.push_back(unsettled_job{"jx", "old", "running", "done", {}, {}});
  start(g);
  auto r = report();
  CAF_CHECK_EQUAL(to_string(r.why), std::string{"busy"});
  CAF_CHECK_EQUAL(r.carry.size(), 1u); // the holder may only be looking
  CAF_CHECK(h->started.empty());
  CAF_CHECK(sql->script->statements.empty());
}

CAF_TEST(a full host ends the turn full and keeps the carry) {
  add_job("A");
  store->slots["db"] = {"s1", "s2", "s3", "s4"};
  auto g = grant();
  g.carry.push_back(unsettled_job{"jx", "old", "running", "done", {}, {}});
  start(g);
  auto r = report();
  CAF_CHECK_EQUAL(to_string(r.why), std::string{"full"});
  CAF_CHECK_EQUAL(r.carry.size(), 1u);
  CAF_CHECK_EQUAL(store->leases.count("alice"), 0u);
}

CAF_TEST(a settle only turn puts a job it claimed straight back untouched) {
  auto a = add_job("A");
  start(grant("tok", 0));
  CAF_CHECK(sql->script->statements.empty());
  CAF_CHECK_EQUAL(status_of(a), "pending");
  CAF_CHECK_EQUAL(store->queues["alice"].front(), a);
  CAF_CHECK_EQUAL(store->leases.count("alice"), 0u);
  CAF_CHECK_EQUAL(to_string(report().why), std::string{"released"});
}


CAF_TEST(a yield before the runner goes on makes it write the end with the release) {
  go_on_mode();
  add_job("A");
  auto b = add_job("B");
  // As the scheduler yields a turn: its flags first, then the message.
  auto flags = std::make_shared<turn_flags>();
  auto q = spawn_user_queue(sys, cfg, grant(), scheduler, deps, flags);
  flags->go_on = false;
  self->send(q, yield_atom::value, std::string{"tok"});
  self->send(q, run_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"A"}));
  CAF_CHECK_EQUAL(status_of(b), "pending");
  CAF_CHECK_EQUAL(to_string(report().why), std::string{"released"});
  // The runner claims A, sees the turn no longer goes on and hands the claim
  // back; the user_queue runs A on it, and the runner writes A + release.
  CAF_CHECK_EQUAL(runners_store->turns, 2u);
}

CAF_TEST(a runner that claims tells the scheduler the lease is held before the job ends) {
  go_on_mode();
  add_job("A");
  // A long first job: the lease must be renewed while it runs, and the
  // scheduler renews only a turn it heard `started` from.
  strings started_while_a_ran;
  sql->script->answers["A"] = test::fake_answer::hook([&] { started_while_a_ran = h->started; });
  start(grant("tok", 1));
  CAF_CHECK_EQUAL(started_while_a_ran, strings{"alice tok"});
  CAF_CHECK_EQUAL(h->started, strings{"alice tok"}); // once
  CAF_CHECK_EQUAL(runners_store->turns, 2u);          // claim A, A + release
  // Neither the claim nor the release went through the status actor (which
  // wrote only A's step starting: A is a job of steps).
  CAF_CHECK_EQUAL(store->turns(turn_part::next) + store->turns(turn_part::release), 2u);
  CAF_CHECK_EQUAL(to_string(report().why), std::string{"idle"});
}

CAF_TEST(an end step of the runner whose reply was lost is retried once and the next job runs once) {
  go_on_mode();
  auto a = add_job("A");
  auto b = add_job("B");
  auto c = add_job("C");
  // The runner's claim of A lands; its next step (A done + claim B) lands
  // too, but its reply is lost: the user_queue sends the same step again,
  // which answers B again (never C), and B runs once.
  bool lost = false;
  store->before_turn = [&](const turn_request& r) {
    if (!lost && !r.write.empty() && r.write.front().job_id == a && runners_store->turns == 2) {
      lost = true;
      store->lose_reply_next = 1;
    }
  };
  start(grant());
  settle_timers();
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"A", "B", "C"}));
  for (const auto& id : {a, b, c})
    CAF_CHECK_EQUAL(status_of(id), "done");
  auto r = report();
  CAF_CHECK_EQUAL(to_string(r.why), std::string{"idle"});
  CAF_CHECK_EQUAL(r.jobs, 3);
  CAF_CHECK(r.carry.empty());
}

CAF_TEST_FIXTURE_SCOPE_END()
