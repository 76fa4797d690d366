// ports::redis_job_store against a real Redis (DB 12, so that no other suite's
// index sets are touched): the status actor's store runs the turn script —
// claims (lease + capacity slot + job), fenced progress writes, final writes
// with a TTL, requeues at the head of the queue, each with the turn's next
// step — and cancels a pending job, one round trip each. The last tests drive
// the real, detached status actor over this store: a job run to done through
// `turn` requests, and a retried final write that is `applied` and logged
// once. (Recovery of orphaned jobs is the user_queue's, tested with it.) Every
// test uses its own user and capacity bucket and deletes its keys.
#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <sstream>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <gtest/gtest.h>

#include "actors/status.hpp"
#include "messages/type_ids.hpp"

#include "src/job/job.hpp"
#include "src/job/progress.hpp"
#include "src/job/record.hpp"
#include "src/log/log.hpp"
#include "src/ports/redis_job_store.hpp"
#include "src/redis/client.hpp"
#include "src/redis/embedded_scripts.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"
#include "tests/support/test_env.hpp"

using namespace batchq;
using namespace std::chrono_literals;

namespace {

constexpr int test_db = 12;

redis::endpoint where() {
  return redis::endpoint{"127.0.0.1", static_cast<uint16_t>(test::redis_port()), test_db};
}

/// Round trips of one port call, exactly. Another test process may SCRIPT
/// FLUSH at any time (tests/redis/scripts_test.cpp), and an EVALSHA that meets
/// the flush costs one more round trip (NOSCRIPT, then EVAL). So the scripts
/// the call uses are loaded right before it, after a canary script; the count
/// is returned only when the canary is still cached afterwards (no flush came
/// after it), else nullopt: the count then proves nothing and the caller's
/// check is skipped (`value_or(expected)`).
struct round_trip_meter {
  redis::client probe{where()};

  template <class Count, class F>
  std::optional<uint64_t> operator()(Count count, std::initializer_list<const redis::script*> used,
                                     F f) {
    auto canary = probe.command({"SCRIPT", "LOAD", "return 'batchq round-trip canary'"});
    EXPECT_TRUE(canary) << message_of(canary.error());
    for (const auto* s : used)
      EXPECT_TRUE(probe.command({"SCRIPT", "LOAD", std::string{s->text}}));
    auto before = count();
    f();
    auto n = count() - before;
    if (!canary)
      return std::nullopt;
    auto still = probe.command({"SCRIPT", "EXISTS", canary->str});
    if (!still || !still->is_array() || still->elements.size() != 1
        || still->elements[0].integer != 1)
      return std::nullopt;
    return n;
  }
};

struct redis_job_store_test : ::testing::Test {
  redis::client rc{where()};
  ports::redis_job_store store{where()};
  round_trip_meter meter;
  std::string user = test::unique_name("store");
  std::string host = test::unique_name("storehost");
  /// The lease token of the current turn (a new turn takes a new one).
  std::string token = redis::random_token();
  std::vector<std::string> job_ids;

  ~redis_job_store_test() override {
    std::vector<std::string> del{"DEL", redis::keys::queue(user), redis::keys::wip_user(user),
                                 redis::keys::lock_user(user), redis::keys::capacity(host)};
    for (const auto& id : job_ids)
      del.push_back(redis::keys::job(id));
    rc.command(del);
    rc.command({"SREM", std::string{redis::keys::queue_index}, user});
    rc.command({"SREM", std::string{redis::keys::wip_users}, user});
  }

  /// A pending two-step job of `user`, created as the API creates it.
  job::job create() {
    job::job_request req;
    req.shape = job::shape::multiple;
    req.steps.resize(2);
    req.steps[0].query = "select 1";
    req.steps[1].query = "select 2";
    auto id = redis::random_token();
    job_ids.push_back(id);
    auto j = job::make_job(req, id, user, {"127.0.0.1", "5432", "db", "dbuser", std::nullopt},
                           std::chrono::system_clock::now());
    auto rec = job::encode(j);
    auto c = redis::create_job(rc, id, user, redis::field_list(rec.begin(), rec.end()), 64);
    EXPECT_TRUE(c) << message_of(c.error());
    return j;
  }

  /// A step of the current turn with at most one write.
  turn_request request(turn_part part, std::vector<job_write> write = {}) const {
    turn_request r;
    r.user = user;
    r.token = token;
    r.host = host;
    r.slot = "slot-" + token;
    r.capacity = 4;
    r.lease_ttl_ms = 30000;
    r.part = part;
    r.write = std::move(write);
    return r;
  }

  /// What the status actor writes into a claimed job.
  field_pairs claim() const {
    return {{"status", "running"}, {"node", "node-a"}, {"updated_at", redis::iso8601_now()}};
  }

  caf::expected<turn_answer> turn(const turn_request& r) { return store.turn(r, claim(), 600); }

  /// Claims the user's next job in the current turn (part next).
  job_ticket claim_next() {
    auto a = turn(request(turn_part::next));
    EXPECT_TRUE(a) << message_of(a.error());
    if (!a)
      return {};
    EXPECT_EQ(a->what, turn_outcome::job);
    return a->jobs.empty() ? job_ticket{} : a->jobs[0];
  }

  job::job decode(const job_ticket& t) {
    auto j = job::decode(t.job_id, job::record(t.record.begin(), t.record.end()));
    EXPECT_TRUE(j) << (j ? "" : j.error().message);
    return j ? *j : job::job{};
  }

  /// The write of `j` from `from` to its current status, under this turn's claim.
  job_write write_of(const job::job& j, const std::string& from, write_kind kind) const {
    auto upd = job::state_fields(j);
    return job_write{j.job_id, from, token, job::to_string(j.status), kind, upd.set, upd.del};
  }

  /// Runs every statement of `j` successfully, in memory.
  static void run_to_done(job::job& j) {
    auto now = std::chrono::system_clock::now();
    while (auto st = job::next_statement(j, 0)) {
      ASSERT_TRUE(job::begin(j, *st, now));
      ASSERT_TRUE(job::apply(j, *st, job::outcome::success(), now));
    }
    ASSERT_EQ(j.status, job::status::done);
  }

  std::string field(const std::string& id, const std::string& name) {
    auto r = rc.command({"HGET", redis::keys::job(id), name});
    return r && r->is_string() ? r->str : std::string{};
  }

  int64_t ttl(const std::string& id) {
    auto r = rc.command({"TTL", redis::keys::job(id)});
    return r ? r->integer : -99;
  }

  std::optional<std::string> holder() {
    auto h = redis::lease_holder(rc, user);
    EXPECT_TRUE(h) << message_of(h.error());
    return h ? *h : std::nullopt;
  }

  int64_t slots() {
    auto r = rc.command({"ZCARD", redis::keys::capacity(host)});
    return r ? r->integer : -99;
  }

  std::vector<std::string> wip() {
    auto r = redis::wip_job_ids(rc, user);
    EXPECT_TRUE(r) << message_of(r.error());
    return r ? *r : std::vector<std::string>{};
  }

  std::optional<uint64_t> turn_cost(std::function<void()> f) {
    return meter([&] { return store.round_trips(); }, {&redis::scripts::turn}, std::move(f));
  }
};

} // namespace

/// The claim of a simple job starts its one step (turn.lua start_simple_step),
/// so that the runner's begin finds nothing to write; a job of several steps
/// is claimed only. CARTO's records carry no `shape`: the query decides.
TEST_F(redis_job_store_test, TheClaimOfASimpleJobStartsItsStepSoTheBeginWritesNothing) {
  auto carto = [&](const std::string& query) {
    auto id = redis::random_token();
    job_ids.push_back(id);
    auto now = redis::iso8601_now();
    EXPECT_TRUE(rc.command({"HSET", redis::keys::job(id), "user", user, "status", "pending",
                            "query", query, "created_at", now, "updated_at", now, "host",
                            "127.0.0.1", "dbname", "db", "dbuser", "dbuser"}));
    EXPECT_TRUE(rc.command({"LPUSH", redis::keys::queue(user), id}));
    return id;
  };
  auto simple = carto("select 1");
  auto spaced_array = carto(" \n[\"select 1\", \"select 2\"]");
  auto t = claim_next();
  ASSERT_EQ(t.job_id, simple);
  EXPECT_EQ(field(simple, "step_status"), "running");
  EXPECT_EQ(field(simple, "step_started_at"), field(simple, "updated_at"));
  // What the runner would write for its first statement is stored already.
  auto j = decode(t);
  auto st = job::next_statement(j, 0);
  ASSERT_TRUE(st);
  ASSERT_TRUE(job::begin(j, *st, std::chrono::system_clock::now()));
  auto f = job::state_fields(j);
  for (const auto& [k, v] : f.set)
    EXPECT_EQ(field(simple, k), v) << k;
  for (const auto& k : f.del)
    EXPECT_EQ(field(simple, k), "") << k;
  // Finish it (to done) and claim the array: its steps are left to the runner.
  ASSERT_TRUE(job::apply(j, *st, job::outcome::success(), std::chrono::system_clock::now()));
  auto a = turn(request(turn_part::next, {write_of(j, "running", write_kind::final)}));
  ASSERT_TRUE(a) << message_of(a.error());
  ASSERT_EQ(a->what, turn_outcome::job);
  ASSERT_EQ(a->jobs[0].job_id, spaced_array);
  EXPECT_EQ(field(spaced_array, "status"), "running");
  EXPECT_EQ(field(spaced_array, "step_status"), "");
  EXPECT_EQ(field(spaced_array, "query").front(), ' ') << "the stored query is untouched";
}

TEST_F(redis_job_store_test, AJobIsClaimedWrittenToDoneWithATtlAndLeavesWorkInProgress) {
  auto created = create();
  caf::expected<turn_answer> a{caf::error{}};
  EXPECT_EQ(turn_cost([&] { a = turn(request(turn_part::next)); }).value_or(1u), 1u)
    << "lease + slot + claim: one round trip";
  ASSERT_TRUE(a) << message_of(a.error());
  ASSERT_EQ(a->what, turn_outcome::job);
  ASSERT_EQ(a->jobs.size(), 1u);
  auto t = a->jobs[0];
  ASSERT_EQ(t.job_id, created.job_id);
  EXPECT_EQ(t.user, user);
  EXPECT_EQ(t.lease_token, token);
  EXPECT_TRUE(std::is_sorted(t.record.begin(), t.record.end())) << "fields in name order";
  auto j = decode(t);
  EXPECT_EQ(j.status, job::status::running);
  EXPECT_EQ(j.node, std::optional<std::string>{"node-a"});
  EXPECT_EQ(field(j.job_id, "node"), "node-a");
  EXPECT_EQ(field(j.job_id, "claim"), token);
  EXPECT_EQ(holder(), token);
  EXPECT_EQ(slots(), 1);
  EXPECT_EQ(wip(), std::vector<std::string>{j.job_id});

  // Progress inside the running job (part none): no TTL, nothing else changes.
  auto now = std::chrono::system_clock::now();
  auto st = job::next_statement(j, 0);
  ASSERT_TRUE(st);
  ASSERT_TRUE(job::begin(j, *st, now));
  EXPECT_EQ(turn_cost([&] {
              a = turn(request(turn_part::none, {write_of(j, "running", write_kind::progress)}));
            }).value_or(1u),
            1u);
  ASSERT_TRUE(a) << message_of(a.error());
  EXPECT_FALSE(a->applied);
  EXPECT_EQ(a->what, turn_outcome::none);
  EXPECT_EQ(field(j.job_id, "status"), "running");
  EXPECT_EQ(ttl(j.job_id), -1);
  EXPECT_EQ(holder(), token);

  // To done with the end of the turn: the TTL is set, work in progress is
  // empty, lease and slot are given back.
  ASSERT_TRUE(job::apply(j, *st, job::outcome::success(), now));
  st = job::next_statement(j, 0);
  ASSERT_TRUE(st);
  ASSERT_TRUE(job::begin(j, *st, now));
  ASSERT_TRUE(job::apply(j, *st, job::outcome::success(), now));
  ASSERT_EQ(j.status, job::status::done);
  EXPECT_EQ(turn_cost([&] {
              a = turn(request(turn_part::release, {write_of(j, "running", write_kind::final)}));
            }).value_or(1u),
            1u);
  ASSERT_TRUE(a) << message_of(a.error());
  EXPECT_FALSE(a->applied);
  EXPECT_EQ(a->what, turn_outcome::released);
  EXPECT_EQ(a->queue_length, 0);
  EXPECT_EQ(field(j.job_id, "status"), "done");
  EXPECT_GT(ttl(j.job_id), 500);
  EXPECT_LE(ttl(j.job_id), 600);
  EXPECT_TRUE(wip().empty());
  EXPECT_EQ(holder(), std::nullopt);
  EXPECT_EQ(slots(), 0);

  auto back = store.read(j.job_id);
  ASSERT_TRUE(back);
  auto decoded = job::decode(j.job_id, job::record(back->begin(), back->end()));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->steps[0].status, job::status::done);
  EXPECT_EQ(decoded->steps[1].status, job::status::done);
}

TEST_F(redis_job_store_test, AWriteIsRefusedWhenTheStoredStatusOrClaimChangedOrTheLeaseIsLost) {
  create();
  auto t = claim_next();
  ASSERT_FALSE(t.job_id.empty());
  auto j = decode(t);
  ASSERT_TRUE(job::cancel(j, std::chrono::system_clock::now()));

  auto stale = turn(request(turn_part::none, {write_of(j, "pending", write_kind::final)}));
  ASSERT_FALSE(stale);
  EXPECT_TRUE(is(stale.error(), ec::invalid_transition)) << message_of(stale.error());

  auto w = write_of(j, "running", write_kind::final);
  w.expected_claim = "another-turn";
  auto other_claim = turn(request(turn_part::none, {w}));
  ASSERT_FALSE(other_claim);
  EXPECT_TRUE(is(other_claim.error(), ec::invalid_transition)) << message_of(other_claim.error());
  EXPECT_EQ(field(j.job_id, "status"), "running");

  auto r = request(turn_part::release, {write_of(j, "running", write_kind::final)});
  r.token = "someone-else";
  auto lost = turn(r);
  ASSERT_FALSE(lost);
  EXPECT_TRUE(is(lost.error(), ec::lease_lost)) << message_of(lost.error());
  EXPECT_EQ(field(j.job_id, "status"), "running");
  EXPECT_EQ(ttl(j.job_id), -1);
  EXPECT_EQ(holder(), token) << "a refused step changes nothing, its turn part included";
  EXPECT_EQ(wip(), std::vector<std::string>{j.job_id});
}

TEST_F(redis_job_store_test, ARetriedFinalWriteAnswersAppliedAndChangesNothing) {
  create();
  auto second = create();
  auto j = decode(claim_next());
  run_to_done(j);
  auto step = request(turn_part::next, {write_of(j, "running", write_kind::final)});
  auto first = turn(step);
  ASSERT_TRUE(first) << message_of(first.error());
  EXPECT_FALSE(first->applied);
  ASSERT_EQ(first->what, turn_outcome::job);
  ASSERT_EQ(first->jobs[0].job_id, second.job_id);
  auto updated = field(j.job_id, "updated_at");
  // Its reply was lost: the same step again.
  auto again = turn(step);
  ASSERT_TRUE(again) << message_of(again.error());
  EXPECT_TRUE(again->applied);
  ASSERT_EQ(again->what, turn_outcome::job);
  EXPECT_EQ(again->jobs[0].job_id, second.job_id) << "the same job, never the one after it";
  EXPECT_EQ(field(j.job_id, "status"), "done");
  EXPECT_EQ(field(j.job_id, "updated_at"), updated);
  EXPECT_EQ(wip(), std::vector<std::string>{second.job_id});
}

TEST_F(redis_job_store_test, ARequeuedJobIsFirstInLine) {
  auto first = create();
  auto second = create();
  auto t = claim_next();
  ASSERT_EQ(t.job_id, first.job_id);
  auto j = decode(t);
  auto st = job::next_statement(j, 0);
  ASSERT_TRUE(job::begin(j, *st, std::chrono::system_clock::now()));
  ASSERT_TRUE(turn(request(turn_part::none, {write_of(j, "running", write_kind::progress)})));
  ASSERT_TRUE(job::drain(j, std::chrono::system_clock::now()));
  ASSERT_EQ(j.status, job::status::pending);

  // A drain: back to the head of the queue, and the turn ends.
  auto r = turn(request(turn_part::release, {write_of(j, "running", write_kind::requeue)}));
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_EQ(r->what, turn_outcome::released);
  EXPECT_EQ(r->queue_length, 2);
  EXPECT_EQ(field(first.job_id, "status"), "pending");
  EXPECT_EQ(holder(), std::nullopt);
  EXPECT_TRUE(wip().empty());
  auto ids = redis::queued_job_ids(rc, user);
  ASSERT_TRUE(ids);
  ASSERT_EQ(ids->size(), 2u);
  EXPECT_EQ(ids->back(), first.job_id) << "the next job is the last id";

  // The user's next turn.
  token = redis::random_token();
  auto again = claim_next();
  EXPECT_EQ(again.job_id, first.job_id);
  auto k = decode(again);
  run_to_done(k);
  auto later = turn(request(turn_part::next, {write_of(k, "running", write_kind::final)}));
  ASSERT_TRUE(later) << message_of(later.error());
  ASSERT_EQ(later->what, turn_outcome::job);
  EXPECT_EQ(later->jobs[0].job_id, second.job_id);
  auto l = decode(later->jobs[0]);
  run_to_done(l);
  auto none = turn(request(turn_part::next, {write_of(l, "running", write_kind::final)}));
  ASSERT_TRUE(none) << message_of(none.error());
  EXPECT_EQ(none->what, turn_outcome::empty);
  EXPECT_EQ(holder(), std::nullopt);
}

TEST_F(redis_job_store_test, ALeaseHeldElsewhereIsBusyAndAFullHostIsFullAndNeitherTakesAnything) {
  auto created = create();
  ASSERT_TRUE(rc.command({"SET", redis::keys::lock_user(user), "other-node", "PX", "30000"}));
  auto busy = turn(request(turn_part::next));
  ASSERT_TRUE(busy) << message_of(busy.error());
  EXPECT_EQ(busy->what, turn_outcome::busy);
  EXPECT_TRUE(busy->jobs.empty());
  EXPECT_EQ(holder(), "other-node");
  ASSERT_TRUE(rc.command({"DEL", redis::keys::lock_user(user)}));

  ASSERT_TRUE(rc.command({"ZADD", redis::keys::capacity(host), "99999999999999", "someone"}));
  auto r = request(turn_part::next);
  r.capacity = 1;
  auto full = turn(r);
  ASSERT_TRUE(full) << message_of(full.error());
  EXPECT_EQ(full->what, turn_outcome::full);
  EXPECT_EQ(holder(), std::nullopt);
  EXPECT_EQ(field(created.job_id, "status"), "pending");
}

TEST_F(redis_job_store_test, AJobRunningUnderAnotherTurnsClaimIsAnsweredAsAnOrphanToRecover) {
  auto created = create();
  create();
  auto dead = token;
  ASSERT_EQ(claim_next().job_id, created.job_id);
  ASSERT_TRUE(rc.command({"DEL", redis::keys::lock_user(user)})); // its lease expired
  token = redis::random_token();
  auto a = turn(request(turn_part::next));
  ASSERT_TRUE(a) << message_of(a.error());
  ASSERT_EQ(a->what, turn_outcome::recover);
  ASSERT_EQ(a->jobs.size(), 1u);
  EXPECT_EQ(a->jobs[0].job_id, created.job_id);
  EXPECT_EQ(a->jobs[0].user, user);
  EXPECT_EQ(a->jobs[0].lease_token, token) << "the ticket is of the turn that recovers it";
  auto claim = std::find_if(a->jobs[0].record.begin(), a->jobs[0].record.end(),
                            [](const auto& kv) { return kv.first == "claim"; });
  ASSERT_NE(claim, a->jobs[0].record.end());
  EXPECT_EQ(claim->second, dead) << "the record carries the claim it was found with";
  EXPECT_EQ(holder(), token);
}

TEST_F(redis_job_store_test, CancelPendingCancelsAPendingJobAndReportsARunningOnesNode) {
  auto running = create();
  auto pending = create();
  auto t = claim_next();
  ASSERT_EQ(t.job_id, running.job_id);

  auto j = pending;
  ASSERT_TRUE(job::cancel(j, std::chrono::system_clock::now()));
  auto upd = job::state_fields(j);
  auto count = [&] { return store.round_trips(); };
  caf::expected<pending_cancel> c{caf::error{}};
  EXPECT_EQ(meter(count, {&redis::scripts::job_cancel_pending},
                  [&] { c = store.cancel_pending(j.job_id, user, upd.set, 600); })
              .value_or(1u),
            1u);
  ASSERT_TRUE(c) << message_of(c.error());
  EXPECT_EQ(*c, (pending_cancel{true, "", ""}));
  EXPECT_EQ(field(j.job_id, "status"), "cancelled");
  EXPECT_GT(ttl(j.job_id), 500);
  auto ids = redis::queued_job_ids(rc, user);
  ASSERT_TRUE(ids);
  EXPECT_TRUE(ids->empty());
  auto back = store.read(j.job_id);
  ASSERT_TRUE(back);
  auto decoded = job::decode(j.job_id, job::record(back->begin(), back->end()));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->steps[0].status, job::status::skipped);

  caf::expected<pending_cancel> r{caf::error{}};
  EXPECT_EQ(meter(count, {&redis::scripts::job_cancel_pending},
                  [&] { r = store.cancel_pending(running.job_id, user, upd.set, 600); })
              .value_or(2u),
            1u)
    << "the script answers the node too";
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_EQ(*r, (pending_cancel{false, "running", "node-a"}));
  EXPECT_EQ(field(running.job_id, "status"), "running");
  auto mark = rc.command({"TTL", redis::keys::cancel_mark(running.job_id)});
  ASSERT_TRUE(mark);
  EXPECT_GT(mark->integer, 86000) << "the cancel mark is left for the runner, for a day";

  auto other = store.cancel_pending(running.job_id, user + "_other", upd.set, 600);
  ASSERT_FALSE(other);
  EXPECT_TRUE(is(other.error(), ec::job_not_found));
  EXPECT_EQ(message_of(other.error()), "Job with id " + running.job_id + " not found");
}

TEST_F(redis_job_store_test, ReadOfAnUnknownJobIsEmpty) {
  auto r = store.read(redis::random_token());
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_TRUE(r->empty());
}

// -- the real, detached status actor over this store --------------------------------

/// An actor system with a detached status actor over a real store, and a
/// scoped actor that asks it.
struct status_over_store {
  caf::actor_system_config cfg;
  std::optional<caf::actor_system> sys;
  std::optional<caf::scoped_actor> self;
  status_actor st;

  explicit status_over_store(const status_settings& ss) {
    register_types(cfg);
    sys.emplace(cfg);
    st = spawn_status(*sys, ss, std::make_shared<ports::redis_job_store>(where()));
    self.emplace(*sys);
  }

  ~status_over_store() {
    (*self)->send_exit(st, caf::exit_reason::user_shutdown);
    st = status_actor{}; // the system waits for its detached thread, which
    self.reset();        // ends once no handle is left
    sys.reset();
  }

  caf::expected<turn_answer> turn(turn_request r) {
    caf::expected<turn_answer> out{caf::error{}};
    (*self)
      ->request(st, 10s, turn_atom::value, std::move(r))
      .receive([&](turn_answer& a) { out = std::move(a); },
               [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  caf::expected<pending_cancel> cancel(const std::string& job_id, const std::string& user) {
    caf::expected<pending_cancel> out{caf::error{}};
    (*self)
      ->request(st, 10s, cancel_atom::value, job_id, user)
      .receive([&](pending_cancel& x) { out = std::move(x); },
               [&](caf::error& e) { out = std::move(e); });
    return out;
  }
};

status_settings node_b() {
  status_settings ss;
  ss.node_id = "node-b";
  ss.finished_jobs_ttl = 900;
  return ss;
}

TEST_F(redis_job_store_test, TheDetachedStatusActorOverTheRealStoreRunsAJobToDone) {
  auto created = create();
  status_over_store actor{node_b()};

  auto claimed = actor.turn(request(turn_part::next));
  ASSERT_TRUE(claimed) << message_of(claimed.error());
  ASSERT_EQ(claimed->what, turn_outcome::job);
  ASSERT_EQ(claimed->jobs.size(), 1u);
  auto ticket = claimed->jobs[0];
  ASSERT_EQ(ticket.job_id, created.job_id);
  EXPECT_EQ(ticket.lease_token, token);
  EXPECT_EQ(field(ticket.job_id, "node"), "node-b");
  EXPECT_EQ(field(ticket.job_id, "claim"), token);
  EXPECT_EQ(holder(), token);
  auto j = decode(ticket);

  // The state machine refuses done -> running, and nothing is written.
  auto refused = actor.turn(request(turn_part::none, {write_of(j, "done", write_kind::progress)}));
  ASSERT_FALSE(refused);
  EXPECT_TRUE(is(refused.error(), ec::invalid_transition));
  EXPECT_EQ(message_of(refused.error()), "Cannot set status from done to running");
  EXPECT_EQ(field(ticket.job_id, "status"), "running");

  // A step starts: a progress write.
  auto now = std::chrono::system_clock::now();
  auto st = job::next_statement(j, 0);
  ASSERT_TRUE(st);
  ASSERT_TRUE(job::begin(j, *st, now));
  auto progress =
    actor.turn(request(turn_part::none, {write_of(j, "running", write_kind::progress)}));
  ASSERT_TRUE(progress) << message_of(progress.error());
  EXPECT_FALSE(progress->applied);
  EXPECT_EQ(progress->what, turn_outcome::none);
  EXPECT_EQ(field(j.job_id, "status"), "running");
  EXPECT_EQ(ttl(j.job_id), -1);
  auto stored = store.read(j.job_id);
  ASSERT_TRUE(stored) << message_of(stored.error());
  auto started = job::decode(j.job_id, job::record(stored->begin(), stored->end()));
  ASSERT_TRUE(started);
  EXPECT_EQ(started->steps[0].status, job::status::running);

  // The final write ends the turn.
  run_to_done(j);
  auto final =
    actor.turn(request(turn_part::release, {write_of(j, "running", write_kind::final)}));
  ASSERT_TRUE(final) << message_of(final.error());
  EXPECT_FALSE(final->applied);
  EXPECT_EQ(final->what, turn_outcome::released);
  EXPECT_EQ(final->queue_length, 0);
  EXPECT_EQ(field(j.job_id, "status"), "done");
  EXPECT_GT(ttl(j.job_id), 800);
  EXPECT_LE(ttl(j.job_id), 900);
  EXPECT_TRUE(wip().empty());
  EXPECT_EQ(holder(), std::nullopt) << "the lease is released";
  EXPECT_EQ(slots(), 0) << "and the capacity slot";

  auto pc = actor.cancel(j.job_id, user);
  ASSERT_TRUE(pc) << message_of(pc.error());
  EXPECT_EQ(*pc, (pending_cancel{false, "done", "node-b"}));
}

TEST_F(redis_job_store_test, ARetriedFinalWriteThroughTheStatusActorIsAppliedAndLoggedOnce) {
  std::ostringstream lines;
  log::set_sink(&lines);
  struct restore_sink {
    ~restore_sink() { log::set_sink(nullptr); }
  } restore;
  auto created = create();
  status_over_store actor{node_b()};

  auto claimed = actor.turn(request(turn_part::next));
  ASSERT_TRUE(claimed) << message_of(claimed.error());
  ASSERT_EQ(claimed->what, turn_outcome::job);
  auto j = decode(claimed->jobs[0]);
  ASSERT_EQ(j.job_id, created.job_id);
  run_to_done(j);
  auto step = request(turn_part::release, {write_of(j, "running", write_kind::final)});
  auto first = actor.turn(step);
  ASSERT_TRUE(first) << message_of(first.error());
  EXPECT_FALSE(first->applied);
  EXPECT_EQ(first->what, turn_outcome::released);
  // Its reply was lost: the user_queue sends the same step again.
  auto again = actor.turn(step);
  ASSERT_TRUE(again) << message_of(again.error());
  EXPECT_TRUE(again->applied);
  EXPECT_EQ(again->what, turn_outcome::released);
  EXPECT_EQ(field(j.job_id, "status"), "done");
  EXPECT_GT(ttl(j.job_id), 800);
  EXPECT_EQ(holder(), std::nullopt);

  // Both answers came after the lines were written.
  std::istringstream in{lines.str()};
  int finished = 0;
  for (std::string line; std::getline(in, line);)
    if (line.find("job finished") != std::string::npos && line.find(j.job_id) != std::string::npos)
      ++finished;
  EXPECT_EQ(finished, 1) << lines.str();
}
