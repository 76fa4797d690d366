// The scheduler (actors/scheduler.hpp) on CAF's test coordinator with a mock
// coordination actor (renewals answered, refused or never answered; hosts;
// orphans; announcements), a mock canceller and mock user_queues. A mock
// user_queue plays a turn against a tiny model of Redis (leases, capacity
// slots, queued jobs): on `run` it ends at once (busy / full / idle) or takes
// lease and slot, says `started` and holds its job until the test finishes
// it (finish_oldest), so several turns run at once and capacity, fairness,
// deadlines and drains can be checked message by message. Virtual clock only.
#define CAF_SUITE actors.scheduler
#include "tests/actors/fixture.hpp"

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "actors/scheduler.hpp"
#include "src/log/log.hpp"

using namespace batchq;
using namespace std::chrono_literals;

namespace {

using strings = std::vector<std::string>;

/// What the mocks share with the test: a model of Redis and what was said.
struct world {
  std::map<std::string, int> jobs;
  /// The flags each turn was spawned with (turn_flags.hpp), by user (the last).
  std::map<std::string, std::shared_ptr<turn_flags>> flags;
  std::map<std::string, std::string> hosts;
  /// Users whose lease another node holds.
  std::set<std::string> foreign;
  /// Users whose busy turns leave this orphan to its live owner.
  std::map<std::string, orphan_sighting> deferring;
  /// user -> token of the lease held by this node's turns.
  std::map<std::string, std::string> leases;
  std::map<std::string, std::set<std::string>> slots;
  std::map<std::string, size_t> max_slots;
  int64_t capacity = 4;

  struct turn {
    std::string user;
    turn_grant grant;
    user_queue_actor queue;
    int ran = 0;
    bool yielded = false;
  };
  /// Turns holding a job now, oldest first.
  std::deque<turn> holding;
  /// Every grant, in order.
  std::vector<turn_grant> grants;
  /// Messages the mock queues received: "yield <user>", "fence <user>", "stop <user>".
  strings told;
  int alive = 0;

  /// Canceller `stop`s: "<user> <reason>".
  strings stops;

  // coordination
  enum class renew_mode { ok, stall, fail } renew = renew_mode::ok;
  /// Tokens the next renewal reports lost.
  std::set<std::string> lose;
  int renews = 0;
  size_t most_renewed = 0;
  std::vector<strings> lookups;
  std::set<std::string> orphans;
  strings announced;
};

/// Ends the turn `t` with `why`, as the real user_queue would.
void end_turn(scheduler_actor sch, world& w, const world::turn& t, turn_end why, int jobs,
              int64_t queued, std::vector<unsettled_job> carry = {}) {
  turn_report r;
  r.user = t.user;
  r.token = t.grant.token;
  r.why = why;
  r.jobs = jobs;
  r.statements_run = jobs;
  r.finished = jobs;
  r.queue_length = queued;
  r.carry = std::move(carry);
  w.leases.erase(t.user);
  w.slots[t.grant.host].erase(t.grant.slot);
  caf::anon_send(sch, ended_atom::value, r);
}

user_queue_actor::behavior_type mock_queue(user_queue_actor::pointer self,
                                           std::shared_ptr<world> w, turn_grant g,
                                           scheduler_actor sch) {
  ++w->alive;
  self->attach_functor([w] { --w->alive; });
  return {
    [=](run_atom) {
      w->grants.push_back(g);
      turn_report r;
      r.user = g.user;
      r.token = g.token;
      auto& s = w->slots[g.host];
      if (w->foreign.count(g.user) > 0) {
        r.why = turn_end::busy;
        r.carry = g.carry;
        if (auto d = w->deferring.find(g.user); d != w->deferring.end())
          r.deferred = g.deferred.empty() ? std::vector<orphan_sighting>{d->second} : g.deferred;
      } else if (w->jobs[g.user] == 0 && g.carry.empty()) {
        r.why = turn_end::idle;
      } else if (static_cast<int64_t>(s.size()) >= w->capacity) {
        r.why = turn_end::full;
        r.carry = g.carry;
      } else {
        s.insert(g.slot);
        w->max_slots[g.host] = std::max(w->max_slots[g.host], s.size());
        w->leases[g.user] = g.token;
        self->send(sch, started_atom::value, g.user, g.token);
        if (w->jobs[g.user] == 0) { // a settle-only turn
          w->leases.erase(g.user);
          s.erase(g.slot);
          r.why = turn_end::idle;
          self->send(sch, ended_atom::value, r);
          self->quit();
          return;
        }
        w->holding.push_back(world::turn{g.user, g, caf::actor_cast<user_queue_actor>(self)});
        return;
      }
      self->send(sch, ended_atom::value, r);
      self->quit();
    },
    [=](yield_atom, const std::string& token) {
      w->told.push_back("yield " + g.user);
      for (auto& t : w->holding)
        if (t.grant.token == token)
          t.yielded = true;
    },
    [=](fence_atom, const std::string&) { w->told.push_back("fence " + g.user); },
    [=](stop_atom, const std::string&) { w->told.push_back("stop " + g.user); },
    [](continued_atom, const job_continued&) {},
  };
}

canceller_actor::behavior_type mock_canceller(canceller_actor::pointer, std::shared_ptr<world> w) {
  return {
    [=](cancel_atom, const std::string& id, const std::string&) {
      return cancel_result{id, "cancelled"};
    },
    [=](remote_cancel_atom, const std::string&) { return false; },
    [=](stop_atom, const std::string& user, const std::string&, stop_reason why) {
      w->stops.push_back(user + " " + to_string(why));
    },
    [=](final_atom, const std::string&, const std::string&) {},
  };
}

coordination_actor::behavior_type mock_coordination(coordination_actor::pointer self,
                                                    std::shared_ptr<world> w) {
  return {
    [=](renew_atom, const std::vector<held_lease>& held,
        int64_t) -> caf::result<std::vector<std::string>> {
      ++w->renews;
      w->most_renewed = std::max(w->most_renewed, held.size());
      if (w->renew == world::renew_mode::stall)
        return self->make_response_promise<std::vector<std::string>>(); // never answered
      if (w->renew == world::renew_mode::fail)
        return make_error(ec::redis_unavailable, "fake Redis is down");
      std::vector<std::string> lost;
      for (auto& h : held)
        if (w->lose.count(h.token) > 0)
          lost.push_back(h.token);
      w->lose.clear();
      return lost;
    },
    [=](hosts_atom, const std::vector<std::string>& users) -> caf::result<std::vector<std::string>> {
      w->lookups.push_back(users);
      std::vector<std::string> out;
      for (auto& u : users)
        out.push_back(w->hosts.count(u) ? w->hosts[u] : std::string{});
      return out;
    },
    [=](orphans_atom) -> caf::result<std::vector<std::string>> {
      return strings(w->orphans.begin(), w->orphans.end());
    },
    [=](announce_atom, const std::vector<std::string>& users) -> caf::result<bool> {
      w->announced.insert(w->announced.end(), users.begin(), users.end());
      return true;
    },
  };
}

struct scheduler_fixture : test::actor_fixture {
  std::shared_ptr<world> w = std::make_shared<world>();
  std::shared_ptr<pg::cancel_registry> registry = std::make_shared<pg::cancel_registry>();
  canceller_actor canceller;
  coordination_actor coord;
  scheduler_actor scheduler;
  scheduler_settings cfg;
  std::ostringstream log_lines;
  std::optional<drain_report> drained;

  scheduler_fixture() {
    log::set_sink(&log_lines);
    cfg.lease_ttl = 5s;
    cfg.shutdown_grace = 10s;
    cfg.drain_bound = 10s;
    // Off the 1 s tick grid: a test can reach a sweep without a tick at the same instant.
    cfg.sweep_interval = 7500ms;
    cfg.turn_jobs = 100;
    // A contended turn yields after its job: the order tests below run jobs
    // without time passing. The slice has tests of its own.
    cfg.turn_slice = 0ms;
  }

  ~scheduler_fixture() {
    // The scheduler's tick re-arms forever: stop it before the base fixture's
    // run(), which fires every pending timeout until none is left.
    anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
    anon_send_exit(canceller, caf::exit_reason::user_shutdown);
    anon_send_exit(coord, caf::exit_reason::user_shutdown);
    for (auto& t : w->holding)
      anon_send_exit(t.queue, caf::exit_reason::user_shutdown);
    sched.run();
    log::set_sink(nullptr);
  }

  void start(int64_t capacity, int64_t max_running = 8) {
    w->capacity = capacity;
    cfg.capacity = capacity;
    cfg.max_running = max_running;
    canceller = sys.spawn(mock_canceller, w);
    coord = sys.spawn(mock_coordination, w);
    auto wp = w;
    auto factory = [wp](caf::actor_system& s, turn_grant g, scheduler_actor sch,
                        std::shared_ptr<turn_flags> flags) {
      wp->flags[g.user] = std::move(flags);
      return s.spawn(mock_queue, wp, std::move(g), sch);
    };
    scheduler = spawn_scheduler(sys, cfg, coord, canceller, registry, factory);
    sched.run();
  }

  /// Consumes every pending message (no timeouts), checking after each one
  /// that no host counts more slots than its capacity.
  void run_checked() {
    while (sched.try_run_once())
      for (auto& [host, s] : w->slots)
        CAF_CHECK_LESS_OR_EQUAL(static_cast<int64_t>(s.size()), w->capacity);
  }

  void wants(const std::string& user) { self->send(scheduler, wants_atom::value, user); }

  /// Ends the job of the turn that has been running longest, as its
  /// user_queue would: the turn goes on while its budget lasts and nobody
  /// asked it to yield, else it ends (released, or idle when nothing is left).
  void finish_oldest() {
    CAF_REQUIRE(!w->holding.empty());
    auto& t = w->holding.front();
    --w->jobs[t.user];
    ++t.ran;
    bool more = w->jobs[t.user] > 0;
    if (more && !t.yielded && t.ran < t.grant.budget)
      return;
    auto done = t;
    w->holding.pop_front();
    end_turn(scheduler, *w, done, more ? turn_end::released : turn_end::idle,
             done.ran, w->jobs[done.user]);
    caf::anon_send_exit(done.queue, caf::exit_reason::user_shutdown);
  }

  /// Runs every job to its end, oldest turn first; returns the users of the
  /// jobs in the order they ran.
  strings finish_all() {
    strings order;
    run_checked();
    while (!w->holding.empty()) {
      order.push_back(w->holding.front().user);
      finish_oldest();
      run_checked();
    }
    return order;
  }

  scheduler_stats stats() {
    auto h = self->request(scheduler, caf::infinite, stats_atom::value);
    sched.run();
    scheduler_stats out;
    h.receive([&](scheduler_stats& s) { out = std::move(s); },
              [&](caf::error& e) { CAF_FAIL("stats failed: " << sys.render(e)); });
    return out;
  }

  /// Puts `user` in the line with a carry, as a fenced turn of it would: a
  /// turn starts, is fenced by a stalled renewal, and ends carrying a job.
  void enqueue_with_carry(const std::string& user) {
    auto foreign = w->foreign;
    w->foreign.clear();
    w->renew = world::renew_mode::stall;
    wants(user);
    run_checked();
    pass(4100ms);
    auto t = w->holding.front();
    w->holding.pop_front();
    w->renew = world::renew_mode::ok;
    w->grants.clear();
    w->foreign = foreign;
    end_turn(scheduler, *w, t, turn_end::fenced, 0, 1,
             {unsettled_job{"j1", t.grant.token, "running", "done", {}, {}}});
    run_checked();
  }

  strings granted_users() {
    strings out;
    for (auto& g : w->grants)
      out.push_back(g.user);
    return out;
  }

  /// Asks for a drain; the answer lands in `drained`.
  void drain() {
    auto sch = scheduler;
    auto* out = &drained;
    sys.spawn([sch, out](caf::event_based_actor* a) {
      a->request(sch, caf::infinite, drain_atom::value).then([=](const drain_report& r) {
        *out = r;
        a->quit();
      });
    });
  }

  /// Moves the virtual clock by `d` in steps of 100 ms, running what each
  /// step triggers (ticks, deadlines, timers).
  void pass(std::chrono::milliseconds d) {
    for (auto t = 0ms; t < d; t += 100ms) {
      advance_time(100ms);
      run_checked();
    }
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(scheduler_tests, scheduler_fixture)

CAF_TEST(at capacity 1 users A B C are served one job at a time A B C A B A) {
  start(1);
  w->jobs = {{"A", 3}, {"B", 2}, {"C", 1}};
  wants("A");
  wants("B");
  wants("C");
  CAF_CHECK_EQUAL(finish_all(), (strings{"A", "B", "C", "A", "B", "A"}));
  auto s = stats();
  CAF_CHECK(s.waiting.empty());
  CAF_CHECK(s.running.empty());
  CAF_CHECK_EQUAL(w->alive, 0);
  CAF_CHECK_EQUAL(w->max_slots["unknown"], 1u);
}

CAF_TEST(at capacity 2 users A B C are served fairly and never more than two at once) {
  start(2);
  w->jobs = {{"A", 3}, {"B", 2}, {"C", 1}};
  wants("A");
  wants("B");
  wants("C");
  auto order = finish_all();
  CAF_CHECK_EQUAL(order.size(), 6u);
  CAF_CHECK_EQUAL(w->max_slots["unknown"], 2u);
  // Fewest statements first: C runs before anyone's second job.
  auto c = std::find(order.begin(), order.end(), "C") - order.begin();
  CAF_CHECK_LESS(c, 3);
}

CAF_TEST(without contention a user keeps its slot for consecutive jobs) {
  start(4);
  w->jobs = {{"A", 5}};
  wants("A");
  run_checked();
  CAF_REQUIRE_EQUAL(w->grants.size(), 1u);
  CAF_CHECK_EQUAL(w->grants[0].budget, cfg.turn_jobs);
  finish_all();
  CAF_CHECK_EQUAL(w->grants.size(), 1u); // one turn, one lease, one slot for all five
}

CAF_TEST(a running turn yields when a user starts waiting for its host) {
  start(1);
  w->jobs = {{"A", 5}, {"B", 1}};
  wants("A");
  run_checked();
  CAF_CHECK(w->told.empty());
  CAF_REQUIRE(w->flags["A"] != nullptr);
  CAF_CHECK(w->flags["A"]->go_on.load()); // its runner may go on by itself
  wants("B");
  run_checked();
  CAF_CHECK_EQUAL(w->told, strings{"yield A"});
  CAF_CHECK(!w->flags["A"]->go_on.load()); // cleared with the yield
  CAF_CHECK(!w->flags["A"]->fenced.load());
  // A's first job, then B's, then A's other four in one turn (nobody waits).
  CAF_CHECK_EQUAL(finish_all(), (strings{"A", "B", "A", "A", "A", "A"}));
  CAF_CHECK_EQUAL(w->grants.size(), 3u);
}

CAF_TEST(a turn granted while someone waits goes on until its slice is over) {
  cfg.turn_slice = 300ms;
  start(1);
  w->jobs = {{"A", 5}, {"B", 1}};
  wants("A");
  wants("B");
  run_checked();
  CAF_REQUIRE_EQUAL(w->grants.size(), 1u);
  CAF_CHECK_EQUAL(w->grants[0].user, "A");
  CAF_CHECK_EQUAL(w->grants[0].budget, cfg.turn_jobs); // not one job: its slice decides
  CAF_CHECK(w->flags["A"]->go_on.load());
  finish_oldest(); // A's first two jobs within the slice: the turn goes on
  finish_oldest();
  run_checked();
  CAF_CHECK(w->told.empty());
  CAF_CHECK_EQUAL(w->grants.size(), 1u);
  advance_time(200ms);
  run_checked();
  CAF_CHECK(w->told.empty());
  advance_time(100ms); // 300 ms after the grant
  run_checked();
  CAF_CHECK_EQUAL(w->told, strings{"yield A"});
  CAF_CHECK(!w->flags["A"]->go_on.load());
  // A's third job ends the turn; B runs, then A's last two in one turn.
  CAF_CHECK_EQUAL(finish_all(), (strings{"A", "B", "A", "A"}));
  CAF_CHECK_EQUAL(w->grants.size(), 3u);
}

CAF_TEST(a turn past its slice yields at once when someone starts waiting) {
  cfg.turn_slice = 300ms;
  start(1);
  w->jobs = {{"A", 5}, {"B", 1}};
  wants("A");
  run_checked();
  advance_time(400ms); // nobody waits: no slice counts
  run_checked();
  CAF_CHECK(w->told.empty());
  wants("B");
  run_checked();
  CAF_CHECK_EQUAL(w->told, strings{"yield A"});
}

CAF_TEST(a turn within its slice yields when the slice is over and not if nobody waits then) {
  cfg.turn_slice = 300ms;
  start(1);
  w->jobs = {{"A", 5}, {"B", 1}, {"C", 3}};
  w->hosts = {{"A", "h1"}, {"B", "h1"}, {"C", "h2"}};
  wants("A");
  wants("C");
  run_checked();
  advance_time(100ms);
  run_checked();
  wants("B"); // 100 ms after A's grant: A goes on for 200 ms more
  run_checked();
  CAF_CHECK(w->told.empty());
  advance_time(200ms);
  run_checked();
  CAF_CHECK_EQUAL(w->told, strings{"yield A"}); // C's host h2: nobody waits, C goes on
  CAF_CHECK(w->flags["C"]->go_on.load());
}

CAF_TEST(capacity is counted per database host) {
  w->hosts = {{"A", "h1"}, {"B", "h2"}, {"C", "h1"}};
  start(1);
  w->jobs = {{"A", 1}, {"B", 1}, {"C", 1}};
  wants("A");
  wants("B");
  wants("C");
  run_checked();
  auto s = stats();
  CAF_CHECK_EQUAL(s.running, (strings{"A", "B"}));
  CAF_CHECK_EQUAL(s.waiting, strings{"C"});
  finish_oldest(); // A frees h1's slot: C runs
  run_checked();
  CAF_CHECK_EQUAL(stats().running, (strings{"B", "C"}));
}

CAF_TEST(no more turns run at once than max running and no more leases are held) {
  start(1000, 3);
  for (auto u : {"A", "B", "C", "D", "E"}) {
    w->jobs[u] = 1;
    wants(u);
  }
  run_checked();
  auto s = stats();
  CAF_CHECK_EQUAL(s.running.size(), 3u);
  CAF_CHECK_EQUAL(s.leases, 3);
  CAF_CHECK_EQUAL(s.waiting, (strings{"D", "E"}));
  CAF_CHECK_EQUAL(w->leases.size(), 3u);
  finish_all();
  CAF_CHECK_EQUAL(w->grants.size(), 5u);
}

CAF_TEST(ten thousand woken users cost bounded redis work and hold only max running leases) {
  start(4, 8);
  for (int i = 0; i < 10000; ++i) {
    auto u = "u" + std::to_string(i);
    w->jobs[u] = 1;
    w->hosts[u] = "h";
    wants(u);
  }
  run_checked();
  // Four turns (the host's capacity), and host lookups of a few batches only.
  auto looked_up = [&] {
    size_t n = 0;
    for (auto& l : w->lookups)
      n += l.size();
    return n;
  };
  CAF_CHECK_EQUAL(w->grants.size(), 4u);
  CAF_CHECK_EQUAL(w->leases.size(), 4u);
  CAF_CHECK_LESS_OR_EQUAL(w->lookups.size(), 3u);
  CAF_CHECK_LESS_OR_EQUAL(looked_up(), 129u);
  // Ticks renew only what runs: one round trip per tick for four leases, and
  // at most one lookup per tick until a few hundred users are known.
  pass(10s);
  CAF_CHECK_EQUAL(w->renews, 10);
  CAF_CHECK_EQUAL(w->most_renewed, 4u);
  CAF_CHECK_EQUAL(w->grants.size(), 4u);
  CAF_CHECK(w->stops.empty());
  CAF_CHECK_LESS_OR_EQUAL(looked_up(), 5u * 64 + 1); // lookups stop at 4 x 64 known
  auto lookups = w->lookups.size();
  pass(10s);
  CAF_CHECK_EQUAL(w->lookups.size(), lookups);
  CAF_CHECK_EQUAL(stats().leases, 4);
  // Serving users needs no lookups while enough known users wait.
  for (int i = 0; i < 100; ++i) {
    finish_oldest();
    run_checked();
  }
  CAF_CHECK_EQUAL(w->grants.size(), 104u);
  CAF_CHECK_EQUAL(w->lookups.size(), lookups);
  CAF_CHECK_LESS_OR_EQUAL(w->max_slots["h"], 4u);
}

CAF_TEST(a user whose lease another node holds is dropped) {
  start(4);
  w->foreign = {"X"};
  w->jobs = {{"X", 1}, {"Y", 1}};
  wants("X");
  wants("Y");
  run_checked();
  auto s = stats();
  CAF_CHECK_EQUAL(s.running, strings{"Y"});
  CAF_CHECK(s.waiting.empty());
}

CAF_TEST(a full host is left alone until a slot is given back here or the next tick) {
  w->hosts = {{"A", "h1"}, {"B", "h1"}, {"C", "h2"}};
  start(1);
  w->slots["h1"] = {"another-node"}; // h1 is full, cluster-wide
  w->jobs = {{"A", 1}, {"B", 1}, {"C", 1}};
  wants("A");
  wants("B");
  wants("C");
  run_checked();
  CAF_CHECK_EQUAL(granted_users(), (strings{"A", "C"})); // B is not even tried
  CAF_CHECK_EQUAL(stats().running, strings{"C"});
  w->slots["h1"].clear(); // the other node gave its slot back
  pass(1s);               // the tick probes h1 once
  CAF_CHECK_EQUAL(stats().running.size(), 2u);
}

CAF_TEST(turns granted at different times are each fenced at their own deadline) {
  start(4);
  w->jobs = {{"A", 1}, {"B", 1}};
  w->renew = world::renew_mode::stall;
  wants("A");
  run_checked();
  pass(2000ms);
  wants("B"); // granted 2 s after A: its deadline is 2 s after A's
  run_checked();
  auto fences = [&] {
    strings out;
    for (auto& m : w->told)
      if (m.rfind("fence ", 0) == 0)
        out.push_back(m);
    return out;
  };
  pass(1800ms); // 3.8 s after A's grant
  CAF_CHECK(fences().empty());
  pass(300ms); // 4.1 s after A's grant
  CAF_CHECK_EQUAL(fences(), strings{"fence A"});
  CAF_CHECK(w->flags["A"]->fenced.load());
  CAF_CHECK(!w->flags["B"]->fenced.load());
  pass(1700ms); // 3.8 s after B's grant
  CAF_CHECK_EQUAL(fences(), strings{"fence A"});
  pass(300ms);
  CAF_CHECK_EQUAL(fences(), (strings{"fence A", "fence B"}));
  CAF_CHECK(w->flags["B"]->fenced.load());
}

CAF_TEST(a turn is fenced at its lease deadline when no renewal answers) {
  start(4);
  w->jobs = {{"A", 1}};
  w->renew = world::renew_mode::stall;
  wants("A");
  run_checked();
  // deadline = grant + ttl - ttl/5 = 4 s
  pass(3900ms);
  CAF_CHECK(w->stops.empty());
  CAF_CHECK(w->told.empty());
  CAF_CHECK(!w->flags["A"]->fenced.load());
  pass(200ms);
  CAF_CHECK_EQUAL(w->stops, strings{"A lease_lost"});
  CAF_CHECK_EQUAL(w->told, strings{"fence A"});
  CAF_CHECK(w->flags["A"]->fenced.load());
  CAF_CHECK(!w->flags["A"]->go_on.load());
  // The turn ends once its runner stopped; the user waits with what it carried.
  auto t = w->holding.front();
  w->holding.pop_front();
  end_turn(scheduler, *w, t, turn_end::fenced, 0, 1,
           {unsettled_job{"j1", t.grant.token, "running", "done", {}, {}}});
  w->renew = world::renew_mode::ok;
  run_checked();
  CAF_REQUIRE_EQUAL(w->grants.size(), 2u);
  CAF_CHECK_EQUAL(w->grants[1].user, "A");
  CAF_REQUIRE_EQUAL(w->grants[1].carry.size(), 1u);
  CAF_CHECK_EQUAL(w->grants[1].carry[0].job_id, "j1");
  CAF_CHECK_NOT_EQUAL(w->grants[1].token, w->grants[0].token);
  // It takes over the fenced turn's lease, which Redis may still hold.
  CAF_CHECK_EQUAL(w->grants[1].inherit, w->grants[0].token);
}

CAF_TEST(a user whose turn left an orphan to its owner comes back a tick later with the sighting) {
  start(4);
  w->jobs = {{"A", 1}};
  w->foreign = {"A"};
  w->deferring["A"] = orphan_sighting{"j1", "claim-b", 42};
  wants("A");
  run_checked();
  CAF_REQUIRE_EQUAL(w->grants.size(), 1u);
  CAF_CHECK(w->grants[0].deferred.empty());
  wants("A"); // the announcement of its own release
  run_checked();
  pass(500ms);
  CAF_CHECK_EQUAL(w->grants.size(), 1u); // not before the next tick
  pass(1600ms);
  CAF_REQUIRE(w->grants.size() >= 2u);
  auto expected = std::vector<orphan_sighting>{orphan_sighting{"j1", "claim-b", 42}};
  CAF_CHECK(w->grants[1].deferred == expected);
  // The owner settles it and lets go: the turn that takes the user still
  // has the sighting; once a turn ends without one, the next has none.
  w->foreign.clear();
  w->deferring.clear();
  pass(1600ms);
  CAF_REQUIRE_EQUAL(w->holding.size(), 1u);
  CAF_CHECK(w->grants.back().deferred == expected);
  auto t = w->holding.front();
  w->holding.pop_front();
  end_turn(scheduler, *w, t, turn_end::released, 1, 1);
  run_checked();
  CAF_REQUIRE_EQUAL(w->holding.size(), 1u);
  CAF_CHECK(w->holding.front().grant.deferred.empty());
}

CAF_TEST(a user whose carry found its lease held elsewhere is tried again a tick later) {
  start(4);
  w->jobs = {{"A", 1}};
  w->foreign = {"A"}; // another node holds the lease, only to look
  enqueue_with_carry("A");
  CAF_CHECK_EQUAL(w->grants.size(), 1u);
  pass(500ms);
  CAF_CHECK_EQUAL(w->grants.size(), 1u); // not before the next tick
  w->foreign.clear();
  pass(1600ms); // the tick after the next one at the latest
  CAF_REQUIRE_EQUAL(w->grants.size(), 2u);
  CAF_CHECK_EQUAL(w->grants[1].carry.size(), 1u);
}

CAF_TEST(renewals keep a long turn alive and the lease deadline in the registry moves) {
  start(4);
  w->jobs = {{"A", 1}};
  wants("A");
  run_checked();
  auto deadline = registry->lease(w->grants.at(0).token);
  pass(60s);
  CAF_CHECK(w->stops.empty());
  CAF_CHECK_GREATER_OR_EQUAL(w->renews, 55);
  CAF_CHECK(!deadline->passed(sched.clock().now()));
  finish_all();
}

CAF_TEST(a failing renewal is not a lost lease but the deadline still fences) {
  start(4);
  w->jobs = {{"A", 1}};
  wants("A");
  run_checked();
  pass(2s);
  w->renew = world::renew_mode::fail;
  pass(2s);
  CAF_CHECK(w->stops.empty()); // the last good renewal was at 2 s: deadline 6 s
  pass(2100ms);
  CAF_CHECK_EQUAL(w->stops, strings{"A lease_lost"});
}

CAF_TEST(a renewal that says the lease is gone fences at once) {
  start(4);
  w->jobs = {{"A", 1}, {"B", 1}};
  wants("A");
  wants("B");
  run_checked();
  w->lose = {w->grants.at(0).token};
  pass(1s);
  CAF_CHECK_EQUAL(w->stops, strings{"A lease_lost"});
  CAF_CHECK_EQUAL(w->told, strings{"fence A"});
}

CAF_TEST(after every lease was lost the users run in parallel again) {
  start(4);
  w->jobs = {{"A", 2}, {"B", 2}};
  wants("A");
  wants("B");
  run_checked();
  CAF_CHECK_EQUAL(stats().running.size(), 2u);
  // Redis restarted without its data: every lease is gone.
  for (auto& t : w->holding)
    w->lose.insert(t.grant.token);
  pass(1s);
  while (!w->holding.empty()) {
    auto t = w->holding.front();
    w->holding.pop_front();
    end_turn(scheduler, *w, t, turn_end::fenced, 0, 2);
  }
  run_checked();
  CAF_CHECK_EQUAL(stats().running.size(), 2u);
  CAF_CHECK_EQUAL(w->grants.size(), 4u);
}

CAF_TEST(a report of an older turn is ignored) {
  start(4);
  w->jobs = {{"A", 1}};
  wants("A");
  run_checked();
  turn_report stale;
  stale.user = "A";
  stale.token = "some-older-turn";
  stale.why = turn_end::idle;
  self->send(scheduler, ended_atom::value, stale);
  run_checked();
  CAF_CHECK_EQUAL(stats().running, strings{"A"});
}

CAF_TEST(a job queued while the turn ends idle brings the user back) {
  start(4);
  w->jobs = {{"A", 1}};
  wants("A");
  run_checked();
  wants("A"); // a new job was published while the turn ran
  run_checked();
  // The turn's last look found the queue empty (it ended idle); the new job
  // arrived right after.
  auto t = w->holding.front();
  w->holding.pop_front();
  end_turn(scheduler, *w, t, turn_end::idle, 1, 0);
  run_checked();
  CAF_CHECK_EQUAL(granted_users(), (strings{"A", "A"}));
}

CAF_TEST(the crash sweep puts users with orphaned work in the line but not users running here) {
  start(4);
  w->jobs = {{"A", 1}, {"B", 1}};
  wants("A");
  run_checked();
  w->orphans = {"A", "B"};
  pass(7500ms);
  CAF_CHECK_EQUAL(granted_users(), (strings{"A", "B"}));
}

CAF_TEST(a drain hands waiting users over yields running turns and answers when they end) {
  start(1);
  w->jobs = {{"A", 3}, {"B", 1}};
  wants("A");
  wants("B");
  run_checked();
  drain();
  run_checked();
  CAF_CHECK_EQUAL(w->announced, strings{"B"});
  CAF_CHECK(std::find(w->told.begin(), w->told.end(), "yield A") != w->told.end());
  CAF_CHECK(!drained);
  finish_oldest(); // A's job ends, the turn releases (the user is published by the script)
  run_checked();
  CAF_REQUIRE(drained.has_value());
  CAF_CHECK_EQUAL(drained->unsettled, 0);
  CAF_CHECK_EQUAL(drained->finished, 1);
  CAF_CHECK_EQUAL(w->grants.size(), 1u); // nothing new was granted
}

CAF_TEST(when the grace is over the drain stops what still runs) {
  cfg.shutdown_grace = 2s;
  start(4);
  w->jobs = {{"A", 1}};
  wants("A");
  run_checked();
  drain();
  run_checked();
  pass(1900ms);
  CAF_CHECK(w->stops.empty());
  pass(200ms);
  CAF_CHECK_EQUAL(w->stops, strings{"A drain"});
  CAF_CHECK(std::find(w->told.begin(), w->told.end(), "stop A") != w->told.end());
  // Renewals go on while the requeue is written.
  auto renews = w->renews;
  pass(1s);
  CAF_CHECK_GREATER(w->renews, renews);
  auto t = w->holding.front();
  w->holding.pop_front();
  turn_report r;
  r.user = t.user;
  r.token = t.grant.token;
  r.why = turn_end::released;
  r.jobs = 1;
  r.requeued = 1;
  r.queue_length = 1;
  self->send(scheduler, ended_atom::value, r);
  run_checked();
  CAF_REQUIRE(drained.has_value());
  CAF_CHECK_EQUAL(drained->requeued, 1);
  CAF_CHECK_EQUAL(drained->unsettled, 0);
}

CAF_TEST(with a grace of zero the drain stops running turns at once) {
  cfg.shutdown_grace = 0s;
  start(4);
  w->jobs = {{"A", 1}};
  wants("A");
  run_checked();
  CAF_CHECK(w->flags["A"]->go_on.load());
  drain();
  run_checked();
  CAF_CHECK_EQUAL(w->stops, strings{"A drain"});
  CAF_CHECK(!w->flags["A"]->go_on.load()); // no runner claims another job
}

CAF_TEST(a drain gives users with unwritten jobs a settle only turn) {
  start(4);
  w->jobs = {{"A", 1}};
  w->renew = world::renew_mode::stall;
  wants("A");
  run_checked();
  pass(4100ms); // fenced
  w->renew = world::renew_mode::ok;
  // The node is told to stop before the fenced turn has ended.
  drain();
  run_checked();
  CAF_CHECK(!drained);
  auto t = w->holding.front();
  w->holding.pop_front();
  w->jobs["A"] = 0;
  end_turn(scheduler, *w, t, turn_end::fenced, 0, 0,
           {unsettled_job{"j1", t.grant.token, "running", "done", {}, {}}});
  run_checked();
  CAF_REQUIRE_EQUAL(w->grants.size(), 2u);
  CAF_CHECK_EQUAL(w->grants.back().budget, 0);
  CAF_CHECK_EQUAL(w->grants.back().carry.size(), 1u);
  CAF_REQUIRE(drained.has_value());
  CAF_CHECK_EQUAL(drained->unsettled, 0);
}

CAF_TEST(a drain that cannot write everything back says so when its bound runs out) {
  cfg.shutdown_grace = 1s;
  start(4);
  w->jobs = {{"A", 1}};
  wants("A");
  run_checked();
  drain();
  run_checked();
  pass(1s + cfg.drain_bound + 100ms); // the turn never ends (Redis gone)
  CAF_REQUIRE(drained.has_value());
  CAF_CHECK_EQUAL(drained->unsettled, 1);
}

CAF_TEST_FIXTURE_SCOPE_END()
