// The status actor (actors/status.hpp) on CAF's test coordinator with the
// in-memory fake_job_store: it refuses what the state machine refuses and
// writes nothing then, passes turn steps through with the claim fields of
// this node, TTLs final writes, logs `job finished` exactly once (also for a
// retried final write), and performs the Redis half of a user's cancel.
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
    sched.run();
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

  /// A two-step job of alice created at t0 with status `status`, as batchq
  /// encodes it; stored in the fake (queued when pending; in work in progress
  /// and claimed by "tok" when running).
  std::string add_job(const std::string& id, const std::string& status = "pending") {
    job::job_request req;
    req.shape = job::shape::multiple;
    req.steps.resize(2);
    req.steps[0].query = "select 1";
    req.steps[1].query = "select 2";
    auto j = job::make_job(req, id, "alice", {"db.local", "5432", "db", "dbuser", std::nullopt},
                           t0);
    j.status = *job::parse_status(status);
    if (status == "running")
      j.node = "node-7";
    auto rec = job::encode(j);
    field_pairs fs(rec.begin(), rec.end());
    if (status == "running") {
      fs.emplace_back("claim", "tok");
      store->wip["alice"].push_front(id);
      store->leases["alice"] = "tok";
    }
    store->add_job(id, fs, status == "pending");
    return id;
  }

  turn_request req(turn_part part) {
    turn_request r;
    r.user = "alice";
    r.token = "tok";
    r.host = "db.local";
    r.slot = "slot-1";
    r.part = part;
    return r;
  }

  /// A turn step writing job `id` from `from` to `to` (kind by the statuses).
  turn_request write(const std::string& id, const std::string& from, const std::string& to,
                     turn_part part = turn_part::none) {
    auto r = req(part);
    job_write w;
    w.job_id = id;
    w.expected_status = from;
    w.expected_claim = "tok";
    w.to_status = to;
    auto parsed = job::parse_status(to);
    w.kind = to == "pending"                          ? write_kind::requeue
             : parsed && job::is_final(*parsed) ? write_kind::final
                                                      : write_kind::progress;
    w.set = {{"status", to}, {"updated_at", job::iso8601(now)}};
    r.write.push_back(std::move(w));
    return r;
  }

  job::job decoded(const std::string& id) {
    auto j = job::decode(id, store->jobs[id]);
    CAF_REQUIRE(static_cast<bool>(j));
    return *j;
  }

  size_t finished_lines() {
    auto out = log_lines.str();
    size_t n = 0;
    for (auto p = out.find("job finished"); p != std::string::npos;
         p = out.find("job finished", p + 1))
      ++n;
    return n;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(status_tests, status_fixture)

CAF_TEST(a write the state machine refuses is answered with the exact text and writes nothing) {
  add_job("j1", "running");
  struct row {
    std::string from, to;
    write_kind kind;
  };
  std::vector<row> refused{
    {"pending", "done", write_kind::final},      {"done", "running", write_kind::progress},
    {"failed", "cancelled", write_kind::final},  {"cancelled", "pending", write_kind::requeue},
    {"pending", "pending", write_kind::requeue}, {"done", "done", write_kind::final},
    {"skipped", "running", write_kind::progress}, {"running", "skipped", write_kind::final},
    {"running", "bogus", write_kind::final},     {"", "running", write_kind::progress},
    {"running", "done", write_kind::progress},   {"running", "pending", write_kind::final},
    {"running", "running", write_kind::requeue}};
  for (const auto& x : refused) {
    auto r = write("j1", x.from, x.to);
    r.write[0].kind = x.kind;
    auto a = ask<turn_answer>(turn_atom::value, r);
    CAF_CHECK(!a.value);
    CAF_CHECK(is(a.err, ec::invalid_transition));
    CAF_CHECK_EQUAL(message_of(a.err), "Cannot set status from " + x.from + " to " + x.to);
  }
  CAF_CHECK(store->calls.empty());
  CAF_CHECK_EQUAL(store->get("j1", "status"), "running");
}

CAF_TEST(progress inside a running job is written without a ttl under the claim) {
  add_job("j1", "running");
  auto r = write("j1", "running", "running");
  r.write[0].set.emplace_back("step_status", "done");
  auto a = ask<turn_answer>(turn_atom::value, r);
  CAF_REQUIRE(a.value);
  CAF_CHECK(a.value->what == turn_outcome::none);
  CAF_REQUIRE_EQUAL(store->calls.size(), 1u);
  CAF_CHECK(store->calls.back().request == r);
  CAF_CHECK_EQUAL(store->ttls.count("j1"), 0u);
  CAF_CHECK_EQUAL(store->get("j1", "step_status"), "done");
  CAF_CHECK_EQUAL(store->get("j1", "claim"), "tok");
}

CAF_TEST(a final write carries the finished jobs ttl and leaves work in progress) {
  add_job("a", "running");
  add_job("b", "running");
  add_job("c", "running");
  CAF_CHECK(ask<turn_answer>(turn_atom::value, write("a", "running", "done")).value);
  CAF_CHECK(ask<turn_answer>(turn_atom::value, write("b", "running", "failed")).value);
  CAF_CHECK(ask<turn_answer>(turn_atom::value, write("c", "running", "cancelled")).value);
  for (auto id : {"a", "b", "c"})
    CAF_CHECK_EQUAL(store->ttls[id], 3600);
  CAF_CHECK_EQUAL(store->get("a", "status"), "done");
  CAF_CHECK_EQUAL(store->get("b", "status"), "failed");
  CAF_CHECK_EQUAL(store->get("c", "status"), "cancelled");
  CAF_CHECK_EQUAL(store->wip.count("alice"), 0u);
}

CAF_TEST(a write whose set omits the status still writes the declared status) {
  add_job("j1", "running");
  auto r = write("j1", "running", "done");
  r.write[0].set = {{"failed_reason", "x"}};
  CAF_CHECK(ask<turn_answer>(turn_atom::value, r).value);
  CAF_CHECK_EQUAL(store->get("j1", "status"), "done");
}

CAF_TEST(a write never overwrites a status changed meanwhile) {
  add_job("j1", "cancelled");
  store->leases["alice"] = "tok";
  auto a = ask<turn_answer>(turn_atom::value, write("j1", "running", "done"));
  CAF_CHECK(!a.value);
  CAF_CHECK(is(a.err, ec::invalid_transition));
  CAF_CHECK_EQUAL(store->get("j1", "status"), "cancelled");
}

CAF_TEST(lease lost job not found and an unreachable store are passed back) {
  add_job("j1", "running");
  auto a = ask<turn_answer>(turn_atom::value, write("gone", "running", "done"));
  CAF_CHECK(is(a.err, ec::job_not_found));
  store->steal("alice");
  a = ask<turn_answer>(turn_atom::value, write("j1", "running", "done"));
  CAF_CHECK(!a.value);
  CAF_CHECK(is(a.err, ec::lease_lost));
  store->fail_next = 1;
  a = ask<turn_answer>(turn_atom::value, req(turn_part::next));
  CAF_CHECK(is(a.err, ec::redis_unavailable));
  CAF_CHECK_EQUAL(store->get("j1", "status"), "running");
}

CAF_TEST(next claims the next job as running on this node under the turn token) {
  add_job("j1");
  add_job("j2");
  auto a = ask<turn_answer>(turn_atom::value, req(turn_part::next));
  CAF_REQUIRE(a.value);
  CAF_CHECK(a.value->what == turn_outcome::job);
  CAF_REQUIRE_EQUAL(a.value->jobs.size(), 1u);
  const auto& t = a.value->jobs[0];
  CAF_CHECK_EQUAL(t.job_id, "j1");
  CAF_CHECK_EQUAL(t.user, "alice");
  CAF_CHECK_EQUAL(t.lease_token, "tok");
  CAF_CHECK_EQUAL(store->get("j1", "status"), "running");
  CAF_CHECK_EQUAL(store->get("j1", "node"), "node-1");
  CAF_CHECK_EQUAL(store->get("j1", "claim"), "tok");
  CAF_CHECK_EQUAL(store->get("j1", "updated_at"), "2026-11-28T17:36:12.405Z");
  CAF_CHECK_EQUAL(store->get("j2", "status"), "pending");
  CAF_CHECK_EQUAL(store->leases["alice"], "tok");
  CAF_CHECK_EQUAL(store->slots["db.local"].count("slot-1"), 1u);
}

CAF_TEST(next of an empty queue answers empty and holds nothing) {
  auto a = ask<turn_answer>(turn_atom::value, req(turn_part::next));
  CAF_REQUIRE(a.value);
  CAF_CHECK(a.value->what == turn_outcome::empty);
  CAF_CHECK_EQUAL(store->leases.count("alice"), 0u);
  CAF_CHECK_EQUAL(store->slots_held(), 0u);
}

CAF_TEST(a requeue writes pending at the head of the queue and may release the turn) {
  add_job("j1");
  add_job("j2");
  CAF_REQUIRE(ask<turn_answer>(turn_atom::value, req(turn_part::next)).value);
  auto a = ask<turn_answer>(turn_atom::value,
                            write("j1", "running", "pending", turn_part::release));
  CAF_REQUIRE(a.value);
  CAF_CHECK(a.value->what == turn_outcome::released);
  CAF_CHECK_EQUAL(a.value->queue_length, 2);
  CAF_CHECK_EQUAL(store->get("j1", "status"), "pending");
  CAF_REQUIRE(!store->queues["alice"].empty());
  CAF_CHECK_EQUAL(store->queues["alice"].front(), "j1");
  CAF_CHECK_EQUAL(store->leases.count("alice"), 0u);
  CAF_CHECK_EQUAL(store->published, std::vector<std::string>{"alice"});
}

CAF_TEST(a job run through the actor logs job finished once with elapsed time and steps) {
  add_job("j1");
  CAF_REQUIRE(ask<turn_answer>(turn_atom::value, req(turn_part::next)).value);
  CAF_CHECK(ask<turn_answer>(turn_atom::value, write("j1", "running", "running")).value);
  CAF_CHECK_EQUAL(finished_lines(), 0u);
  auto j = decoded("j1");
  j.status = job::status::done;
  j.steps[0].status = job::status::done;
  j.steps[1].status = job::status::done;
  auto upd = job::state_fields(j);
  auto r = write("j1", "running", "done", turn_part::next);
  r.write[0].set = upd.set;
  r.write[0].del = upd.del;
  auto a = ask<turn_answer>(turn_atom::value, r);
  CAF_REQUIRE(a.value);
  CAF_CHECK(!a.value->applied);
  CAF_CHECK_EQUAL(finished_lines(), 1u);
  auto out = log_lines.str();
  CAF_CHECK(out.find("status=done") != std::string::npos);
  CAF_CHECK(out.find("elapsed_ms=1500") != std::string::npos);
  CAF_CHECK(out.find("done,done") != std::string::npos);
  // The reply was lost and the step is sent again: applied, and no second line.
  a = ask<turn_answer>(turn_atom::value, r);
  CAF_REQUIRE(a.value);
  CAF_CHECK(a.value->applied);
  CAF_CHECK_EQUAL(finished_lines(), 1u);
}

CAF_TEST(cancel of a pending job writes cancelled with every step skipped and the ttl) {
  add_job("j1");
  add_job("j2");
  auto r = ask<pending_cancel>(cancel_atom::value, std::string{"j1"}, std::string{"alice"});
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, (pending_cancel{true, "cancelled", ""}));
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
  add_job("j1", "running");
  auto r = ask<pending_cancel>(cancel_atom::value, std::string{"j1"}, std::string{"alice"});
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, (pending_cancel{false, "running", "node-7"}));
  CAF_CHECK_EQUAL(store->get("j1", "status"), "running");
}

CAF_TEST(cancel that races with a claim reports the job as running) {
  add_job("j1");
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
  CAF_CHECK_EQUAL(finished_lines(), 0u);
}

CAF_TEST(cancel of another users job or of an unknown id is job not found) {
  add_job("j1");
  for (auto [id, user] : std::vector<std::pair<std::string, std::string>>{{"j1", "mallory"},
                                                                         {"nope", "alice"}}) {
    auto r = ask<pending_cancel>(cancel_atom::value, id, user);
    CAF_CHECK(!r.value);
    CAF_CHECK(is(r.err, ec::job_not_found));
    CAF_CHECK_EQUAL(message_of(r.err), "Job with id " + id + " not found");
  }
  CAF_CHECK_EQUAL(store->get("j1", "status"), "pending");
}

CAF_TEST(cancel of a done job reports done and writes nothing) {
  add_job("j1", "done");
  auto r = ask<pending_cancel>(cancel_atom::value, std::string{"j1"}, std::string{"alice"});
  CAF_REQUIRE(r.value);
  CAF_CHECK_EQUAL(*r.value, (pending_cancel{false, "done", ""}));
}

CAF_TEST_FIXTURE_SCOPE_END()
