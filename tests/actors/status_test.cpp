// The status actor (actors/status.hpp) on CAF's test coordinator with the
// in-memory fake_job_store: it refuses what the state machine refuses and
// writes nothing then, fences and TTLs what it lets through, claims dequeued
// jobs, performs the Redis half of a user's cancel, and recovers a user's
// orphaned work in progress (SPEC §7 "Crash") with a recording fake
// backend_cancel.
#define CAF_SUITE actors.status
#include "tests/actors/fixture.hpp"

#include <optional>
#include <sstream>

#include "actors/status.hpp"
#include "src/job/job.hpp"
#include "src/job/progress.hpp"
#include "src/job/record.hpp"
#include "src/log/log.hpp"
#include "tests/actors/fake_job_store.hpp"

using namespace batchq;

namespace {

/// A request's answer: a value or an error.
template <class T> struct answer {
  std::optional<T> value;
  caf::error err;
};

const job::time_point t0 = *job::parse_iso8601("2026-11-28T17:36:10.905Z");
const job::time_point t1 = *job::parse_iso8601("2026-11-28T17:36:12.405Z");

/// A FAKE backend_cancel: records "<job_id> <user>" per call, answers 1
/// backend signalled, or `fail` when set.
struct recording_backend_cancel : ports::backend_cancel {
  std::vector<std::string> calls;
  caf::error fail;

  caf::expected<int> cancel_backends_of_job(const std::string& job_id,
                                            const std::string& user) override {
    calls.push_back(job_id + " " + user);
    if (fail)
      return fail;
    return 1;
  }
};

struct status_fixture : test::actor_fixture {
  std::shared_ptr<test::fake_job_store> store = std::make_shared<test::fake_job_store>();
  std::shared_ptr<recording_backend_cancel> backends =
    std::make_shared<recording_backend_cancel>();
  job::time_point now = t1;
  status_actor st;
  std::ostringstream log_lines;

  status_fixture() {
    respawn(job::node_loss_mode::fail, backends);
    log::set_sink(&log_lines);
  }

  /// (Re)spawns the status actor with batch.on-node-loss `mode` and `bc`.
  void respawn(job::node_loss_mode mode, std::shared_ptr<ports::backend_cancel> bc) {
    if (st)
      anon_send_exit(st, caf::exit_reason::user_shutdown);
    status_settings cfg;
    cfg.node_id = "node-1";
    cfg.finished_jobs_ttl = 3600;
    cfg.clock = [this] { return now; };
    cfg.on_node_loss = mode;
    cfg.backend_cancel = std::move(bc);
    st = spawn_status(sys, cfg, store, false);
    sched.run();
  }

  ~status_fixture() { log::set_sink(nullptr); }

  template <class T, class... Ts> answer<T> ask(Ts... xs) {
    auto h = self->request(st, caf::infinite, std::move(xs)...);
    sched.run();
    answer<T> out;
    h.receive([&](T& x) { out.value = std::move(x); }, [&](caf::error& e) { out.err = e; });
    return out;
  }

  /// A two-step job of `user` created at t0, with status `status`, as batchq
  /// encodes it; stored in the fake (and queued when pending).
  std::string add_job(const std::string& id, const std::string& user,
                      const std::string& status = "pending") {
    job::job_request req;
    req.shape = job::shape::multiple;
    req.steps.resize(2);
    req.steps[0].query = "select 1";
    req.steps[1].query = "select 2";
    auto j = job::make_job(req, id, user, {"db.local", "5432", "db", "dbuser", std::nullopt}, t0);
    j.status = *job::parse_status(status);
    if (status == "running")
      j.node = "node-7";
    auto rec = job::encode(j);
    store->add_job(id, field_pairs(rec.begin(), rec.end()), status == "pending");
    return id;
  }

  state_write sw(const std::string& id, const std::string& from, const std::string& to) {
    state_write w;
    w.job_id = id;
    w.user = "alice";
    w.lease_token = "tok";
    w.from_status = from;
    w.to_status = to;
    w.set = {{"status", to}, {"updated_at", job::iso8601(now)}};
    return w;
  }

  /// A job of `user` orphaned by node n1: dequeued (in the user's work in
  /// progress, not queued), its first `done_steps` statements done and the next
  /// one running since t0.
  std::string add_orphan(const std::string& id, const std::string& user, job::job_request req,
                         size_t done_steps) {
    auto j = job::make_job(std::move(req), id, user, {"db.local", "5432", "db", "dbuser",
                                                      std::nullopt}, t0);
    for (size_t i = 0; i < done_steps; ++i) {
      auto s = job::next_statement(j, 0);
      CAF_REQUIRE(s);
      CAF_REQUIRE(job::begin(j, *s, t0));
      CAF_REQUIRE(job::apply(j, *s, job::outcome::success(), t0));
    }
    auto s = job::next_statement(j, 0);
    CAF_REQUIRE(s);
    CAF_REQUIRE(job::begin(j, *s, t0));
    j.node = "n1";
    auto rec = job::encode(j);
    store->add_job(id, field_pairs(rec.begin(), rec.end()), false);
    store->wip[user].push_front(id);
    return id;
  }

  static job::job_request steps(std::vector<std::string> queries) {
    job::job_request req;
    req.shape = job::shape::multiple;
    for (auto& q : queries) {
      job::step s;
      s.query = std::move(q);
      req.steps.push_back(std::move(s));
    }
    return req;
  }

  answer<int32_t> recover(const std::string& user = "alice") {
    return ask<int32_t>(recover_atom::value, user, std::string{"tok"});
  }

  job::job decoded(const std::string& id) {
    auto j = job::decode(id, store->jobs[id]);
    CAF_REQUIRE(static_cast<bool>(j));
    return *j;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(status_tests, status_fixture)

CAF_TEST(a write the state machine refuses is answered with the exact text and writes nothing) {
  add_job("j1", "alice", "running");
  std::vector<std::pair<std::string, std::string>> refused{
    {"pending", "done"},     {"done", "running"},    {"failed", "cancelled"},
    {"cancelled", "pending"}, {"pending", "pending"}, {"done", "done"},
    {"skipped", "running"},  {"running", "skipped"}, {"running", "bogus"},
    {"", "running"}};
  for (const auto& [from, to] : refused) {
    auto r = ask<bool>(write_atom::value, sw("j1", from, to));
    CAF_CHECK(!r.value);
    CAF_CHECK(is(r.err, ec::invalid_transition));
    CAF_CHECK_EQUAL(message_of(r.err), "Cannot set status from " + from + " to " + to);
  }
  CAF_CHECK_EQUAL(store->count("write"), 0u);
  CAF_CHECK_EQUAL(store->get("j1", "status"), "running");
}

CAF_TEST(progress inside a running job is written without a ttl and fenced on the status) {
  add_job("j1", "alice", "running");
  auto w = sw("j1", "running", "running");
  w.set.emplace_back("step_status", "done");
  auto r = ask<bool>(write_atom::value, w);
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, true);
  CAF_REQUIRE_EQUAL(store->count("write"), 1u);
  const auto& c = store->calls.back();
  CAF_CHECK_EQUAL(c.final, false);
  CAF_CHECK_EQUAL(c.w, w);
  CAF_CHECK_EQUAL(c.w.from_status, "running");
  CAF_CHECK_EQUAL(store->ttls.count("j1"), 0u);
  CAF_CHECK_EQUAL(store->get("j1", "step_status"), "done");
}

CAF_TEST(a final write carries the finished jobs ttl and a non final one does not) {
  add_job("a", "alice", "running");
  add_job("b", "alice", "running");
  add_job("c", "alice", "running");
  add_job("d", "alice", "pending");
  CAF_CHECK(ask<bool>(write_atom::value, sw("a", "running", "done")).value);
  CAF_CHECK(ask<bool>(write_atom::value, sw("b", "running", "failed")).value);
  CAF_CHECK(ask<bool>(write_atom::value, sw("c", "running", "cancelled")).value);
  CAF_CHECK(ask<bool>(write_atom::value, sw("d", "pending", "running")).value);
  CAF_REQUIRE_EQUAL(store->count("write"), 4u);
  for (size_t i = 0; i < 3; ++i) {
    CAF_CHECK_EQUAL(store->calls[i].final, true);
    CAF_CHECK_EQUAL(store->calls[i].ttl, 3600);
  }
  CAF_CHECK_EQUAL(store->calls[3].final, false);
  CAF_CHECK_EQUAL(store->get("a", "status"), "done");
  CAF_CHECK_EQUAL(store->get("b", "status"), "failed");
  CAF_CHECK_EQUAL(store->get("c", "status"), "cancelled");
  CAF_CHECK_EQUAL(store->get("d", "status"), "running");
  CAF_CHECK_EQUAL(store->ttls.count("d"), 0u);
}

CAF_TEST(a write whose set omits the status still writes the declared status) {
  add_job("j1", "alice", "running");
  auto w = sw("j1", "running", "done");
  w.set = {{"failed_reason", "x"}};
  CAF_CHECK(ask<bool>(write_atom::value, w).value);
  CAF_CHECK_EQUAL(store->get("j1", "status"), "done");
}

CAF_TEST(a write never overwrites a status changed meanwhile) {
  add_job("j1", "alice", "cancelled");
  auto r = ask<bool>(write_atom::value, sw("j1", "running", "done"));
  CAF_CHECK(!r.value);
  CAF_CHECK(is(r.err, ec::invalid_transition));
  CAF_CHECK_EQUAL(store->get("j1", "status"), "cancelled");
}

CAF_TEST(lease lost and job not found from the store are passed back) {
  add_job("j1", "alice", "running");
  auto r = ask<bool>(write_atom::value, sw("gone", "running", "done"));
  CAF_CHECK(is(r.err, ec::job_not_found));
  store->fail_fenced = make_error(ec::lease_lost, "lease of user alice is not held");
  r = ask<bool>(write_atom::value, sw("j1", "running", "done"));
  CAF_CHECK(!r.value);
  CAF_CHECK(is(r.err, ec::lease_lost));
  auto d = ask<job_ticket>(dequeue_atom::value, std::string{"alice"}, std::string{"tok"});
  CAF_CHECK(!d.value);
  CAF_CHECK(is(d.err, ec::lease_lost));
  auto q = ask<bool>(requeue_atom::value, sw("j1", "running", "pending"));
  CAF_CHECK(is(q.err, ec::lease_lost));
  CAF_CHECK_EQUAL(store->get("j1", "status"), "running");
}

CAF_TEST(dequeue claims the next job as running on this node) {
  add_job("j1", "alice");
  add_job("j2", "alice");
  auto r = ask<job_ticket>(dequeue_atom::value, std::string{"alice"}, std::string{"tok"});
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(r.value->job_id, "j1");
  CAF_CHECK_EQUAL(r.value->user, "alice");
  CAF_CHECK_EQUAL(r.value->lease_token, "tok");
  field_pairs claim{{"status", "running"},
                    {"node", "node-1"},
                    {"updated_at", "2026-11-28T17:36:12.405Z"}};
  CAF_CHECK_EQUAL(store->calls.back().fields, claim);
  CAF_CHECK_EQUAL(store->get("j1", "status"), "running");
  CAF_CHECK_EQUAL(store->get("j1", "node"), "node-1");
  auto rec = r.value->record;
  CAF_CHECK(std::find(rec.begin(), rec.end(), std::make_pair(std::string{"node"},
                                                             std::string{"node-1"}))
            != rec.end());
  CAF_CHECK_EQUAL(store->get("j2", "status"), "pending");
}

CAF_TEST(dequeue of an empty queue answers an empty job id) {
  auto r = ask<job_ticket>(dequeue_atom::value, std::string{"bob"}, std::string{"tok"});
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(r.value->job_id, "");
  CAF_CHECK_EQUAL(r.value->user, "bob");
}

CAF_TEST(requeue writes pending at the head of the queue and refuses other statuses) {
  add_job("j1", "alice");
  add_job("j2", "alice");
  auto d = ask<job_ticket>(dequeue_atom::value, std::string{"alice"}, std::string{"tok"});
  CAF_REQUIRE(d.value);
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
         {"running", "done"}, {"running", "running"}, {"done", "pending"}, {"cancelled", "pending"}}) {
    auto r = ask<bool>(requeue_atom::value, sw("j1", from, to));
    CAF_CHECK(is(r.err, ec::invalid_transition));
    CAF_CHECK_EQUAL(message_of(r.err), "Cannot set status from " + from + " to " + to);
  }
  CAF_CHECK_EQUAL(store->count("requeue"), 0u);
  auto r = ask<bool>(requeue_atom::value, sw("j1", "running", "pending"));
  CAF_CHECK(r.value);
  CAF_CHECK_EQUAL(store->count("requeue"), 1u);
  CAF_CHECK_EQUAL(store->get("j1", "status"), "pending");
  CAF_REQUIRE(!store->queues["alice"].empty());
  CAF_CHECK_EQUAL(store->queues["alice"].front(), "j1");
}

CAF_TEST(cancel of a pending job writes cancelled with every step skipped and the ttl) {
  add_job("j1", "alice");
  add_job("j2", "alice");
  auto r = ask<pending_cancel>(cancel_atom::value, std::string{"j1"}, std::string{"alice"});
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, (pending_cancel{true, "cancelled", ""}));
  CAF_CHECK_EQUAL(store->count("cancel_pending"), 1u);
  CAF_CHECK_EQUAL(store->count("write"), 0u);
  CAF_CHECK_EQUAL(store->ttls["j1"], 3600);
  auto j = decoded("j1");
  CAF_CHECK_EQUAL(j.status, job::status::cancelled);
  CAF_CHECK_EQUAL(j.steps[0].status, job::status::skipped);
  CAF_CHECK_EQUAL(j.steps[1].status, job::status::skipped);
  CAF_CHECK_EQUAL(j.updated_at, "2026-11-28T17:36:12.405Z");
  CAF_CHECK_EQUAL(store->queues["alice"].size(), 1u);
  auto line = log_lines.str();
  CAF_CHECK(line.find("job finished") != std::string::npos);
  CAF_CHECK(line.find("j1") != std::string::npos);
  CAF_CHECK(line.find("elapsed_ms=1500") != std::string::npos);
  CAF_CHECK(line.find("skipped,skipped") != std::string::npos);
}

CAF_TEST(cancel of a running job reports its status and node and writes nothing) {
  add_job("j1", "alice", "running");
  auto r = ask<pending_cancel>(cancel_atom::value, std::string{"j1"}, std::string{"alice"});
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, (pending_cancel{false, "running", "node-7"}));
  CAF_CHECK_EQUAL(store->count("cancel_pending"), 0u);
  CAF_CHECK_EQUAL(store->count("write"), 0u);
  CAF_CHECK_EQUAL(store->get("j1", "status"), "running");
}

CAF_TEST(cancel that races with a dequeue reports the job as running) {
  add_job("j1", "alice");
  store->before_cancel_pending = [this] {
    store->jobs["j1"].emplace_back("node", "node-9");
    for (auto& kv : store->jobs["j1"])
      if (kv.first == "status")
        kv.second = "running";
  };
  auto r = ask<pending_cancel>(cancel_atom::value, std::string{"j1"}, std::string{"alice"});
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, (pending_cancel{false, "running", "node-9"}));
  CAF_CHECK_EQUAL(store->get("j1", "status"), "running");
  CAF_CHECK(log_lines.str().find("job finished") == std::string::npos);
}

CAF_TEST(cancel of another users job or of an unknown id is job not found) {
  add_job("j1", "alice");
  for (auto [id, user] : std::vector<std::pair<std::string, std::string>>{{"j1", "mallory"},
                                                                         {"nope", "alice"}}) {
    auto r = ask<pending_cancel>(cancel_atom::value, id, user);
    CAF_CHECK(!r.value);
    CAF_CHECK(is(r.err, ec::job_not_found));
    CAF_CHECK_EQUAL(message_of(r.err), "Job with id " + id + " not found");
  }
  CAF_CHECK_EQUAL(store->count("cancel_pending"), 0u);
  CAF_CHECK_EQUAL(store->get("j1", "status"), "pending");
}

CAF_TEST(cancel of a done job reports done and writes nothing) {
  add_job("j1", "alice", "done");
  auto r = ask<pending_cancel>(cancel_atom::value, std::string{"j1"}, std::string{"alice"});
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, (pending_cancel{false, "done", ""}));
  CAF_CHECK_EQUAL(store->count("cancel_pending"), 0u);
  CAF_CHECK_EQUAL(store->count("write"), 0u);
}

CAF_TEST(a job run through the actor logs job finished once with elapsed time and steps) {
  add_job("j1", "alice");
  auto d = ask<job_ticket>(dequeue_atom::value, std::string{"alice"}, std::string{"tok"});
  CAF_REQUIRE(d.value);
  CAF_CHECK(ask<bool>(write_atom::value, sw("j1", "running", "running")).value);
  CAF_CHECK(log_lines.str().find("job finished") == std::string::npos);
  auto w = sw("j1", "running", "done");
  auto j = decoded("j1");
  j.status = job::status::done;
  j.steps[0].status = job::status::done;
  j.steps[1].status = job::status::done;
  auto upd = job::state_fields(j);
  w.set = upd.set;
  w.del = upd.del;
  CAF_CHECK(ask<bool>(write_atom::value, w).value);
  auto out = log_lines.str();
  auto first = out.find("job finished");
  CAF_REQUIRE(first != std::string::npos);
  CAF_CHECK(out.find("job finished", first + 1) == std::string::npos);
  CAF_CHECK(out.find("status=done") != std::string::npos);
  CAF_CHECK(out.find("elapsed_ms=1500") != std::string::npos);
  CAF_CHECK(out.find("done,done") != std::string::npos);
}

// -- recover (SPEC §7 "Crash") ------------------------------------------------

CAF_TEST(recover in fail mode fails the interrupted step and the job and writes it final) {
  add_orphan("j1", "alice", steps({"select 1", "select 2", "select 3"}), 1);
  auto r = recover();
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, 1);
  CAF_CHECK_EQUAL(backends->calls, std::vector<std::string>{"j1 alice"});
  auto j = decoded("j1");
  CAF_CHECK_EQUAL(j.status, job::status::failed);
  CAF_CHECK_EQUAL(j.steps[0].status, job::status::done);
  CAF_CHECK_EQUAL(j.steps[1].status, job::status::failed);
  CAF_CHECK_EQUAL(j.steps[1].failed_reason.value_or(""),
                  "job interrupted: node n1 was lost while running it");
  CAF_CHECK_EQUAL(j.steps[1].ended_at.value_or(""), "2026-11-28T17:36:12.405Z");
  CAF_CHECK_EQUAL(j.steps[2].status, job::status::skipped);
  CAF_CHECK_EQUAL(j.failed_reason.value_or(""),
                  "job interrupted: node n1 was lost while running it");
  CAF_REQUIRE_EQUAL(store->count("write"), 1u);
  const auto& c = store->calls.back();
  CAF_CHECK_EQUAL(c.op, "write");
  CAF_CHECK_EQUAL(c.final, true);
  CAF_CHECK_EQUAL(c.w.from_status, "running");
  CAF_CHECK_EQUAL(c.w.to_status, "failed");
  CAF_CHECK_EQUAL(c.w.lease_token, "tok");
  CAF_CHECK_EQUAL(store->ttls["j1"], 3600);
  CAF_CHECK_EQUAL(store->wip.count("alice"), 0u);
  CAF_CHECK_EQUAL(store->count("requeue"), 0u);
  CAF_CHECK(store->queues["alice"].empty());
  auto out = log_lines.str();
  CAF_CHECK(out.find("job recovered") != std::string::npos);
  CAF_CHECK(out.find("node=n1") != std::string::npos);
  CAF_CHECK(out.find("outcome=failed") != std::string::npos);
  CAF_CHECK(out.find("job finished") != std::string::npos);
}

CAF_TEST(recover in fail mode requeues a job whose step onerror fallback still has to run) {
  add_job("j2", "alice"); // queued behind the orphan
  auto req = steps({"select 1", "select 2"});
  req.steps[0].onerror = "insert into log values ('cleanup')";
  req.steps[0].fallback_status = job::status::pending;
  add_orphan("j1", "alice", req, 0);
  auto r = recover();
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, 1);
  auto j = decoded("j1");
  CAF_CHECK_EQUAL(j.status, job::status::pending);
  CAF_CHECK_EQUAL(j.steps[0].status, job::status::failed);
  CAF_CHECK_EQUAL(j.steps[0].failed_reason.value_or(""),
                  "job interrupted: node n1 was lost while running it");
  CAF_CHECK_EQUAL(j.steps[1].status, job::status::skipped);
  CAF_REQUIRE(j.steps[0].fallback_status);
  CAF_CHECK_EQUAL(*j.steps[0].fallback_status, job::status::pending);
  // At the head of the queue, and the onerror fallback is what runs next.
  CAF_REQUIRE_EQUAL(store->queues["alice"].size(), 2u);
  CAF_CHECK_EQUAL(store->queues["alice"].front(), "j1");
  auto next = job::next_statement(j, 0);
  CAF_REQUIRE(next);
  CAF_CHECK_EQUAL(next->kind, job::statement_kind::step_onerror);
  CAF_CHECK_EQUAL(next->sql, "insert into log values ('cleanup')");
  CAF_CHECK_EQUAL(store->count("requeue"), 1u);
  CAF_CHECK_EQUAL(store->calls.back().w.from_status, "running");
  CAF_CHECK_EQUAL(store->count("write"), 0u);
  CAF_CHECK_EQUAL(store->ttls.count("j1"), 0u);
  CAF_CHECK_EQUAL(store->wip.count("alice"), 0u);
  CAF_CHECK(log_lines.str().find("outcome=requeued") != std::string::npos);
}

CAF_TEST(recover in requeue mode puts the job back at the head resuming at the interrupted step) {
  respawn(job::node_loss_mode::requeue, nullptr); // and no backend_cancel port
  add_job("j2", "alice");
  add_orphan("j1", "alice", steps({"select 1", "select 2"}), 1);
  auto r = recover();
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, 1);
  auto j = decoded("j1");
  CAF_CHECK_EQUAL(j.status, job::status::pending);
  CAF_CHECK_EQUAL(j.steps[0].status, job::status::done);
  CAF_CHECK_EQUAL(j.steps[1].status, job::status::pending);
  CAF_CHECK(!j.steps[1].started_at);
  CAF_CHECK(!store->has("j1", "failed_reason"));
  CAF_CHECK_EQUAL(store->queues["alice"].front(), "j1");
  auto next = job::next_statement(j, 0);
  CAF_REQUIRE(next);
  CAF_CHECK_EQUAL(next->kind, job::statement_kind::step);
  CAF_CHECK_EQUAL(next->step, 1u);
  CAF_CHECK_EQUAL(store->wip.count("alice"), 0u);
  CAF_CHECK(backends->calls.empty());
}

CAF_TEST(recover removes stale work in progress entries and counts only running jobs) {
  add_job("done1", "alice", "done");
  store->wip["alice"].push_front("done1");
  store->wip["alice"].push_front("ghost"); // no hash: expired or deleted
  add_job("bobs", "bob", "running");
  store->wip["alice"].push_front("bobs"); // another user's job
  add_orphan("r1", "alice", steps({"select 1"}), 0);
  add_orphan("r2", "alice", steps({"select 1"}), 0);
  auto r = recover();
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, 2);
  CAF_CHECK_EQUAL(store->count("remove_from_wip"), 3u);
  CAF_CHECK_EQUAL(store->wip.count("alice"), 0u);
  CAF_CHECK_EQUAL(store->get("done1", "status"), "done");
  CAF_CHECK_EQUAL(store->get("bobs", "status"), "running");
  CAF_CHECK_EQUAL(store->jobs.count("ghost"), 0u);
  CAF_CHECK_EQUAL(store->get("r1", "status"), "failed");
  CAF_CHECK_EQUAL(store->get("r2", "status"), "failed");
  CAF_CHECK_EQUAL(backends->calls, (std::vector<std::string>{"r2 alice", "r1 alice"}));
  // Nothing orphaned: nothing to do, a count of 0.
  r = recover();
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, 0);
}

CAF_TEST(recover puts a pending job left in work in progress back at the head of the queue) {
  add_job("p1", "alice", "pending");
  add_job("p2", "alice", "pending");
  store->queues["alice"].pop_front(); // dequeued by a worker that died before claiming it
  store->wip["alice"].push_front("p1");
  auto r = recover();
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, 0);
  CAF_CHECK_EQUAL(store->get("p1", "status"), "pending");
  CAF_CHECK_EQUAL(store->queues["alice"], (std::deque<std::string>{"p1", "p2"}));
  CAF_CHECK_EQUAL(store->wip.count("alice"), 0u);
  CAF_CHECK(backends->calls.empty());
}

CAF_TEST(a backend cancel error during recover is logged and the job is still recovered) {
  backends->fail = make_error(ec::pg_connect_failed, "cannot connect to the database: refused");
  add_orphan("j1", "alice", steps({"select 1"}), 0);
  auto r = recover();
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, 1);
  CAF_CHECK_EQUAL(store->get("j1", "status"), "failed");
  CAF_CHECK(log_lines.str().find("orphaned backends not cancelled") != std::string::npos);
}

CAF_TEST(a lost lease during recover is passed back and the orphan is left as it was) {
  add_orphan("j1", "alice", steps({"select 1", "select 2"}), 0);
  store->fail_fenced = make_error(ec::lease_lost, "lease of user alice is not held");
  auto r = recover();
  CAF_CHECK(!r.value);
  CAF_CHECK(is(r.err, ec::lease_lost));
  CAF_CHECK_EQUAL(store->get("j1", "status"), "running");
  CAF_CHECK_EQUAL(store->wip["alice"], std::deque<std::string>{"j1"});
  CAF_CHECK(log_lines.str().find("job recovered") == std::string::npos);
}

CAF_TEST_FIXTURE_SCOPE_END()
