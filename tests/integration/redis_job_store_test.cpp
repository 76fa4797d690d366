// ports::redis_job_store against a real Redis (DB 12, so that no other suite's
// index sets are touched): the status actor's store claims, writes with a
// compare-and-set and a TTL, requeues at the head of the queue and cancels a
// pending job — one round trip each — and lists and (fenced) prunes work in
// progress. The last tests drive the real, detached status actor over this
// store, including the recover of an orphaned running job (SPEC §7 "Crash"). Every test uses its own user and deletes
// its keys.
#include <algorithm>
#include <chrono>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <gtest/gtest.h>

#include "actors/status.hpp"
#include "messages/type_ids.hpp"

#include "src/job/job.hpp"
#include "src/job/progress.hpp"
#include "src/job/record.hpp"
#include "src/ports/redis_job_store.hpp"
#include "src/redis/client.hpp"
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

struct redis_job_store_test : ::testing::Test {
  redis::client rc{where()};
  ports::redis_job_store store{where()};
  std::string user = test::unique_name("store");
  std::string token = redis::random_token();
  std::vector<std::string> job_ids;

  void SetUp() override {
    auto l = redis::acquire_lease(rc, user, token, 30000ms);
    ASSERT_TRUE(l && *l);
  }

  ~redis_job_store_test() override {
    std::vector<std::string> del{"DEL", redis::keys::queue(user), redis::keys::wip_user(user),
                                 redis::keys::lock_user(user)};
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

  field_pairs claim() const {
    return {{"status", "running"}, {"node", "node-a"}, {"updated_at", redis::iso8601_now()}};
  }

  job::job decode(const job_ticket& t) {
    auto j = job::decode(t.job_id, job::record(t.record.begin(), t.record.end()));
    EXPECT_TRUE(j) << (j ? "" : j.error().message);
    return j ? *j : job::job{};
  }

  /// The state write of `j` from `from` to its current status.
  state_write write_of(const job::job& j, const std::string& from) {
    auto upd = job::state_fields(j);
    return state_write{j.job_id, user, token, from, job::to_string(j.status), upd.set, upd.del};
  }

  std::string field(const std::string& id, const std::string& name) {
    auto r = rc.command({"HGET", redis::keys::job(id), name});
    return r && r->is_string() ? r->str : std::string{};
  }

  int64_t ttl(const std::string& id) {
    auto r = rc.command({"TTL", redis::keys::job(id)});
    return r ? r->integer : -99;
  }
};

} // namespace

TEST_F(redis_job_store_test, AJobIsClaimedWrittenToDoneWithATtlAndLeavesWorkInProgress) {
  auto created = create();
  auto rt = store.round_trips();
  auto t = store.dequeue(user, token, claim());
  ASSERT_TRUE(t) << message_of(t.error());
  EXPECT_EQ(store.round_trips() - rt, 1u);
  ASSERT_EQ(t->job_id, created.job_id);
  EXPECT_EQ(t->user, user);
  EXPECT_EQ(t->lease_token, token);
  auto j = decode(*t);
  EXPECT_EQ(j.status, job::status::running);
  EXPECT_EQ(j.node, std::optional<std::string>{"node-a"});
  EXPECT_EQ(field(j.job_id, "node"), "node-a");

  // Progress inside the running job: no TTL.
  auto now = std::chrono::system_clock::now();
  auto st = job::next_statement(j, 0);
  ASSERT_TRUE(st);
  ASSERT_TRUE(job::begin(j, *st, now));
  rt = store.round_trips();
  auto w = store.write(write_of(j, "running"), false, 600);
  ASSERT_TRUE(w) << message_of(w.error());
  EXPECT_EQ(store.round_trips() - rt, 1u);
  EXPECT_EQ(field(j.job_id, "status"), "running");
  EXPECT_EQ(ttl(j.job_id), -1);

  // To done: the TTL is set and work in progress is empty.
  ASSERT_TRUE(job::apply(j, *st, job::outcome::success(), now));
  st = job::next_statement(j, 0);
  ASSERT_TRUE(st);
  ASSERT_TRUE(job::begin(j, *st, now));
  ASSERT_TRUE(job::apply(j, *st, job::outcome::success(), now));
  ASSERT_EQ(j.status, job::status::done);
  w = store.write(write_of(j, "running"), true, 600);
  ASSERT_TRUE(w) << message_of(w.error());
  EXPECT_EQ(field(j.job_id, "status"), "done");
  EXPECT_GT(ttl(j.job_id), 500);
  EXPECT_LE(ttl(j.job_id), 600);
  auto wip = redis::wip_job_ids(rc, user);
  ASSERT_TRUE(wip);
  EXPECT_TRUE(wip->empty());

  auto back = store.read(j.job_id);
  ASSERT_TRUE(back);
  auto decoded = job::decode(j.job_id, job::record(back->begin(), back->end()));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->steps[0].status, job::status::done);
  EXPECT_EQ(decoded->steps[1].status, job::status::done);
}

TEST_F(redis_job_store_test, AWriteIsRefusedWhenTheStoredStatusChangedOrTheLeaseIsLost) {
  create();
  auto t = store.dequeue(user, token, claim());
  ASSERT_TRUE(t && !t->job_id.empty());
  auto j = decode(*t);
  ASSERT_TRUE(job::cancel(j, std::chrono::system_clock::now()));

  auto stale = store.write(write_of(j, "pending"), true, 600);
  ASSERT_FALSE(stale);
  EXPECT_TRUE(is(stale.error(), ec::invalid_transition)) << message_of(stale.error());
  EXPECT_EQ(field(j.job_id, "status"), "running");

  auto w = write_of(j, "running");
  w.lease_token = "someone-else";
  auto lost = store.write(w, true, 600);
  ASSERT_FALSE(lost);
  EXPECT_TRUE(is(lost.error(), ec::lease_lost));
  EXPECT_EQ(field(j.job_id, "status"), "running");
  EXPECT_EQ(ttl(j.job_id), -1);
}

TEST_F(redis_job_store_test, ARequeuedJobIsFirstInLine) {
  auto first = create();
  auto second = create();
  auto t = store.dequeue(user, token, claim());
  ASSERT_TRUE(t);
  ASSERT_EQ(t->job_id, first.job_id);
  auto j = decode(*t);
  auto st = job::next_statement(j, 0);
  ASSERT_TRUE(job::begin(j, *st, std::chrono::system_clock::now()));
  ASSERT_TRUE(store.write(write_of(j, "running"), false, 600));
  ASSERT_TRUE(job::drain(j, std::chrono::system_clock::now()));
  ASSERT_EQ(j.status, job::status::pending);

  auto r = store.requeue(write_of(j, "running"));
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_EQ(field(first.job_id, "status"), "pending");
  auto ids = redis::queued_job_ids(rc, user);
  ASSERT_TRUE(ids);
  ASSERT_EQ(ids->size(), 2u);
  EXPECT_EQ(ids->back(), first.job_id) << "the next job is the last id";

  auto again = store.dequeue(user, token, claim());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job_id, first.job_id);
  auto later = store.dequeue(user, token, claim());
  ASSERT_TRUE(later);
  EXPECT_EQ(later->job_id, second.job_id);
  auto none = store.dequeue(user, token, claim());
  ASSERT_TRUE(none);
  EXPECT_EQ(none->job_id, "");
}

TEST_F(redis_job_store_test, CancelPendingCancelsAPendingJobAndReportsARunningOnesNode) {
  auto running = create();
  auto pending = create();
  auto t = store.dequeue(user, token, claim());
  ASSERT_TRUE(t);
  ASSERT_EQ(t->job_id, running.job_id);

  auto j = pending;
  ASSERT_TRUE(job::cancel(j, std::chrono::system_clock::now()));
  auto upd = job::state_fields(j);
  auto rt = store.round_trips();
  auto c = store.cancel_pending(j.job_id, user, upd.set, 600);
  ASSERT_TRUE(c) << message_of(c.error());
  EXPECT_EQ(store.round_trips() - rt, 1u);
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

  rt = store.round_trips();
  auto r = store.cancel_pending(running.job_id, user, upd.set, 600);
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_EQ(store.round_trips() - rt, 2u) << "the script, then HGET node";
  EXPECT_EQ(*r, (pending_cancel{false, "running", "node-a"}));
  EXPECT_EQ(field(running.job_id, "status"), "running");

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

TEST_F(redis_job_store_test, TheDetachedStatusActorOverTheRealStoreRunsAJobToDone) {
  auto created = create();
  caf::actor_system_config cfg;
  register_types(cfg);
  caf::actor_system sys{cfg};
  status_settings ss;
  ss.node_id = "node-b";
  ss.finished_jobs_ttl = 900;
  auto st = spawn_status(sys, ss, std::make_shared<ports::redis_job_store>(where()));
  caf::scoped_actor self{sys};
  auto fail = [](caf::error& e) { ADD_FAILURE() << message_of(e); };

  job_ticket ticket;
  self->request(st, 5s, dequeue_atom::value, user, token)
    .receive([&](job_ticket& t) { ticket = std::move(t); }, fail);
  ASSERT_EQ(ticket.job_id, created.job_id);
  EXPECT_EQ(field(ticket.job_id, "node"), "node-b");
  auto j = decode(ticket);

  // The state machine refuses done -> running, and nothing is written.
  self->request(st, 5s, write_atom::value, write_of(j, "done"))
    .receive([&](bool) { ADD_FAILURE() << "done -> running accepted"; },
             [&](caf::error& e) {
               EXPECT_TRUE(is(e, ec::invalid_transition));
               EXPECT_EQ(message_of(e), "Cannot set status from done to running");
               EXPECT_EQ(field(ticket.job_id, "status"), "running");
             });

  auto now = std::chrono::system_clock::now();
  while (auto st_next = job::next_statement(j, 0)) {
    ASSERT_TRUE(job::begin(j, *st_next, now));
    ASSERT_TRUE(job::apply(j, *st_next, job::outcome::success(), now));
  }
  ASSERT_EQ(j.status, job::status::done);
  bool ok = false;
  self->request(st, 5s, write_atom::value, write_of(j, "running"))
    .receive([&](bool b) { ok = b; }, fail);
  EXPECT_TRUE(ok);
  EXPECT_EQ(field(j.job_id, "status"), "done");
  EXPECT_GT(ttl(j.job_id), 800);
  EXPECT_LE(ttl(j.job_id), 900);

  pending_cancel pc;
  self->request(st, 5s, cancel_atom::value, j.job_id, user)
    .receive([&](pending_cancel& x) { pc = std::move(x); }, fail);
  EXPECT_EQ(pc, (pending_cancel{false, "done", "node-b"}));
  self->send_exit(st, caf::exit_reason::user_shutdown);
}

TEST_F(redis_job_store_test, WipJobsListsDequeuedJobsAndRemoveFromWipIsFencedAndKeepsTheHash) {
  auto first = create();
  auto second = create();
  auto none = store.wip_jobs(user);
  ASSERT_TRUE(none) << message_of(none.error());
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(store.dequeue(user, token, claim()));
  ASSERT_TRUE(store.dequeue(user, token, claim()));
  auto rt = store.round_trips();
  auto wip = store.wip_jobs(user);
  ASSERT_TRUE(wip) << message_of(wip.error());
  EXPECT_EQ(store.round_trips() - rt, 1u);
  EXPECT_EQ(*wip, (std::vector<std::string>{second.job_id, first.job_id}))
    << "most recently dequeued first";

  auto lost = store.remove_from_wip(first.job_id, user, "someone-else");
  ASSERT_FALSE(lost);
  EXPECT_TRUE(is(lost.error(), ec::lease_lost));
  EXPECT_EQ(store.wip_jobs(user)->size(), 2u);

  rt = store.round_trips();
  auto r = store.remove_from_wip(first.job_id, user, token);
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_EQ(store.round_trips() - rt, 1u);
  EXPECT_EQ(*store.wip_jobs(user), std::vector<std::string>{second.job_id});
  EXPECT_EQ(field(first.job_id, "status"), "running") << "the hash is not touched";
  ASSERT_TRUE(store.remove_from_wip(second.job_id, user, token));
  EXPECT_TRUE(store.wip_jobs(user)->empty());
  auto users = redis::wip_users(rc);
  ASSERT_TRUE(users);
  EXPECT_EQ(std::count(users->begin(), users->end(), user), 0)
    << "an empty work in progress leaves batch:wip:users";
  // Removing an id that is not there is not an error.
  EXPECT_TRUE(store.remove_from_wip(second.job_id, user, token));
}

TEST_F(redis_job_store_test, TheDetachedStatusActorRecoversAnOrphanedRunningJobAsFailed) {
  // Node n1 dequeued the job and started its first step, then died; its lease
  // expired and this node took the user's lease with a new token.
  auto created = create();
  field_pairs n1_claim{{"status", "running"}, {"node", "n1"}, {"updated_at", redis::iso8601_now()}};
  auto t = store.dequeue(user, token, n1_claim);
  ASSERT_TRUE(t && t->job_id == created.job_id);
  auto j = decode(*t);
  auto st_next = job::next_statement(j, 0);
  ASSERT_TRUE(st_next);
  ASSERT_TRUE(job::begin(j, *st_next, std::chrono::system_clock::now()));
  ASSERT_TRUE(store.write(write_of(j, "running"), false, 600));
  ASSERT_TRUE(redis::release_lease(rc, user, token));
  auto new_token = redis::random_token();
  auto l = redis::acquire_lease(rc, user, new_token, 30000ms);
  ASSERT_TRUE(l && *l);

  caf::actor_system_config cfg;
  register_types(cfg);
  caf::actor_system sys{cfg};
  status_settings ss;
  ss.node_id = "node-b";
  ss.finished_jobs_ttl = 900;
  auto st = spawn_status(sys, ss, std::make_shared<ports::redis_job_store>(where()));
  caf::scoped_actor self{sys};
  auto fail = [](caf::error& e) { ADD_FAILURE() << message_of(e); };

  // The old token is fenced out.
  self->request(st, 5s, recover_atom::value, user, token)
    .receive([&](int32_t) { ADD_FAILURE() << "recover with a lost lease accepted"; },
             [&](caf::error& e) { EXPECT_TRUE(is(e, ec::lease_lost)) << message_of(e); });
  EXPECT_EQ(field(created.job_id, "status"), "running");

  int32_t n = -1;
  self->request(st, 5s, recover_atom::value, user, new_token)
    .receive([&](int32_t x) { n = x; }, fail);
  EXPECT_EQ(n, 1);
  EXPECT_EQ(field(created.job_id, "status"), "failed");
  EXPECT_EQ(field(created.job_id, "failed_reason"),
            "job interrupted: node n1 was lost while running it");
  EXPECT_GT(ttl(created.job_id), 800);
  auto back = store.read(created.job_id);
  ASSERT_TRUE(back);
  auto d = job::decode(created.job_id, job::record(back->begin(), back->end()));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->steps[0].status, job::status::failed);
  EXPECT_EQ(d->steps[1].status, job::status::skipped);
  auto wip = redis::wip_job_ids(rc, user);
  ASSERT_TRUE(wip);
  EXPECT_TRUE(wip->empty());

  // Nothing left: a second recover finds nothing.
  n = -1;
  self->request(st, 5s, recover_atom::value, user, new_token)
    .receive([&](int32_t x) { n = x; }, fail);
  EXPECT_EQ(n, 0);
  self->send_exit(st, caf::exit_reason::user_shutdown);
  token = new_token; // the fixture's clean-up
}
