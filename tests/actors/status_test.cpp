// The status actor (actors/status.hpp) on CAF's test coordinator with the
// in-memory fake_job_store: it refuses what the state machine refuses and
// writes nothing then, fences and TTLs what it lets through, claims dequeued
// jobs, and performs the Redis half of a user's cancel.
#define CAF_SUITE actors.status
#include "tests/actors/fixture.hpp"

#include <optional>
#include <sstream>

#include "actors/status.hpp"
#include "src/job/job.hpp"
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

struct status_fixture : test::actor_fixture {
  std::shared_ptr<test::fake_job_store> store = std::make_shared<test::fake_job_store>();
  job::time_point now = t1;
  status_actor st;
  std::ostringstream log_lines;

  status_fixture() {
    status_settings cfg;
    cfg.node_id = "node-1";
    cfg.finished_jobs_ttl = 3600;
    cfg.clock = [this] { return now; };
    st = spawn_status(sys, cfg, store, false);
    log::set_sink(&log_lines);
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

CAF_TEST_FIXTURE_SCOPE_END()
