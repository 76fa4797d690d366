// The job_runner on the test coordinator: a mock status actor (records every
// progress write, answers unless told otherwise), a fake environment and a
// fake SQL connector (tests/actors/fake_*.hpp). Cancels are simulated through
// the real pg::cancel_registry, fired at chosen points; retries run on the
// virtual clock. The runner writes progress only; its answer (job_outcome)
// carries the end state the user_queue writes.
#define CAF_SUITE actors.job_runner
#include "tests/actors/fixture.hpp"

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "actors/job_runner.hpp"
#include "src/job/job.hpp"
#include "src/job/parse.hpp"
#include "src/job/record.hpp"
#include "tests/actors/fake_environment.hpp"
#include "tests/actors/fake_sql.hpp"

using namespace batchq;
using namespace std::chrono_literals;

namespace {

struct status_log {
  std::vector<turn_request> entries;
  /// Consulted for every request (index = its position in `entries`); a
  /// non-empty error is the answer.
  std::function<caf::error(size_t, const turn_request&)> refuse;
  /// Jobs with the cancel mark (a user asked to cancel them while running).
  std::set<std::string> cancel_marks;
  /// Job ids whose mark was asked for.
  std::vector<std::string> marks_asked;
};

status_actor::behavior_type mock_status(status_actor::pointer, std::shared_ptr<status_log> log) {
  return {
    [=](turn_atom, const turn_request& r) -> caf::result<turn_answer> {
      log->entries.push_back(r);
      if (log->refuse)
        if (auto err = log->refuse(log->entries.size() - 1, r))
          return err;
      return turn_answer{};
    },
    [](cancel_atom, const std::string&, const std::string&) -> caf::result<pending_cancel> {
      return pending_cancel{};
    },
    [=](cancel_mark_atom, const std::string& id) -> caf::result<bool> {
      log->marks_asked.push_back(id);
      return log->cancel_marks.count(id) == 1;
    },
  };
}

/// `record` with fields set and deleted (what Redis would hold).
field_pairs merged(field_pairs record, const field_pairs& set,
                   const std::vector<std::string>& del) {
  for (const auto& [k, v] : set) {
    bool found = false;
    for (auto& kv : record)
      if (kv.first == k) {
        kv.second = v;
        found = true;
      }
    if (!found)
      record.emplace_back(k, v);
  }
  for (const auto& d : del) {
    for (auto i = record.begin(); i != record.end();) {
      if (i->first == d)
        i = record.erase(i);
      else
        ++i;
    }
  }
  return record;
}

std::string field(const field_pairs& fs, const std::string& name) {
  for (const auto& [k, v] : fs)
    if (k == name)
      return v;
  return "<absent>";
}

struct runner_fixture : batchq::test::actor_fixture {
  std::shared_ptr<status_log> writes = std::make_shared<status_log>();
  status_actor status = sys.spawn(mock_status, writes);
  std::shared_ptr<batchq::test::fake_environment> env =
    std::make_shared<batchq::test::fake_environment>();
  std::shared_ptr<batchq::test::fake_sql_connector> sql =
    std::make_shared<batchq::test::fake_sql_connector>();
  std::shared_ptr<pg::cancel_registry> registry = std::make_shared<pg::cancel_registry>();
  runner_settings cfg;
  std::string user = "alice";
  std::string job_id = "job-1";
  job_runner_actor runner;
  job_outcome last;

  runner_fixture() {
    cfg.node_id = "node-a";
    cfg.postgres_port = 5999;
    env->passwords[{user, "alice_role"}] = "s3cret";
    runner = spawn_job_runner(sys, cfg, status, env, sql, registry, false);
  }

  /// A claimed ticket (status running, node, claim) for the job of `body`.
  job_ticket ticket(const std::string& body, std::string port = "") {
    auto req = job::parse_request(body, "application/json", "");
    CAF_REQUIRE(static_cast<bool>(req));
    job::db_target db{"db.example", std::move(port), "alice_db", "alice_role", std::nullopt};
    auto j = job::make_job(*req, job_id, user, db, std::chrono::system_clock::now());
    auto record = job::encode(j);
    for (auto& [k, v] : record)
      if (k == "status")
        v = "running";
    record.emplace_back("node", "node-a");
    record.emplace_back("claim", "lease-token");
    return job_ticket{job_id, user, "lease-token", record};
  }

  /// The outcome the runner answered (REQUIRES: it answered).
  job_outcome outcome() {
    job_outcome out;
    bool got = false;
    self->receive(
      [&](job_outcome& o) {
        out = o;
        got = true;
      },
      caf::after(std::chrono::seconds(0)) >> [] {});
    CAF_REQUIRE(got);
    last = out;
    return out;
  }

  job_outcome run_job(const job_ticket& t) {
    self->send(runner, run_atom::value, t);
    sched.run();
    return outcome();
  }

  /// The job as Redis would hold it after every progress write, and the
  /// runner's answer written by the user_queue.
  job::job stored(const job_ticket& t) {
    auto record = t.record;
    for (const auto& r : writes->entries)
      for (const auto& w : r.write)
        record = merged(record, w.set, w.del);
    record = merged(record, last.set, last.del);
    auto j = job::decode(t.job_id, record);
    CAF_REQUIRE(static_cast<bool>(j));
    return *j;
  }

  std::vector<std::string> write_statuses() {
    std::vector<std::string> out;
    for (const auto& r : writes->entries)
      for (const auto& w : r.write)
        out.push_back(w.expected_status + "->" + w.to_status);
    return out;
  }
};

using strings = std::vector<std::string>;

} // namespace

CAF_TEST_FIXTURE_SCOPE(job_runner_tests, runner_fixture)

CAF_TEST(a simple job writes running and answers its done state unwritten) {
  auto t = ticket(R"({"query": "SELECT 1"})");
  auto o = run_job(t);
  CAF_CHECK_EQUAL(o.job_id, job_id);
  CAF_CHECK_EQUAL(to_string(o.how), std::string{"finished"});
  CAF_CHECK_EQUAL(o.status, "done");
  CAF_CHECK_EQUAL(o.written_status, "running");
  CAF_CHECK_EQUAL(o.statements_run, 1);
  CAF_CHECK_EQUAL(field(o.set, "status"), "done");
  CAF_CHECK_EQUAL(field(o.set, "step_status"), "done");
  CAF_CHECK_EQUAL(sql->script->sqls(), strings{"SELECT 1"});
  CAF_CHECK_EQUAL(sql->script->statements.at(0).job_id, job_id);
  CAF_CHECK_EQUAL(write_statuses(), strings({"running->running"}));
  for (const auto& r : writes->entries) {
    CAF_CHECK_EQUAL(r.user, user);
    CAF_CHECK_EQUAL(r.token, "lease-token");
    CAF_CHECK(r.part == turn_part::none);
    CAF_REQUIRE_EQUAL(r.write.size(), 1u);
    CAF_CHECK_EQUAL(r.write[0].job_id, job_id);
    CAF_CHECK_EQUAL(r.write[0].expected_claim, "lease-token");
    CAF_CHECK(r.write[0].kind == write_kind::progress);
  }
  CAF_CHECK_EQUAL(field(writes->entries.at(0).write[0].set, "step_status"), "running");
  CAF_CHECK(!registry->armed(job_id));
  CAF_REQUIRE_EQUAL(sql->script->connects.size(), 1u);
  CAF_CHECK_EQUAL(sql->script->connects[0].password, "s3cret");
  CAF_CHECK_EQUAL(sql->script->connects[0].key.host, "db.example");
  CAF_CHECK_EQUAL(sql->script->connects[0].key.port, 5999); // "" -> postgres.port
  CAF_CHECK_EQUAL(sql->script->connects[0].key.dbname, "alice_db");
  CAF_CHECK_EQUAL(sql->script->connects[0].key.role, "alice_role");
}

CAF_TEST(a failing step runs its onerror with the message quoted and skips later steps) {
  auto t = ticket(R"({"query": {"query": [
      {"query": "STEP A", "onerror": "LOG '<%= error_message %>'"},
      {"query": "STEP B", "onsuccess": "NEVER"}],
    "onerror": "JOB ONERROR <%= job_id %>"}})",
                  "6543");
  sql->script->answers["STEP A"] = batchq::test::fake_answer::fail("22012", "it's broken");
  auto o = run_job(t);
  CAF_CHECK_EQUAL(o.status, "failed");
  CAF_CHECK_EQUAL(o.statements_run, 3);
  CAF_CHECK_EQUAL(sql->script->sqls(),
                  strings({"STEP A", "LOG 'it''s broken'", "JOB ONERROR job-1"}));
  CAF_CHECK_EQUAL(sql->script->connects.at(0).key.port, 6543);
  // Templated fallbacks run with standard_conforming_strings forced on; the
  // step itself as the session has it.
  CAF_REQUIRE_EQUAL(sql->script->statements.size(), 3u);
  CAF_CHECK(!sql->script->statements[0].standard_strings);
  CAF_CHECK(sql->script->statements[1].standard_strings);
  CAF_CHECK(sql->script->statements[2].standard_strings);
  auto j = stored(t);
  CAF_CHECK_EQUAL(job::to_string(j.status), std::string{"failed"});
  CAF_CHECK_EQUAL(j.failed_reason.value_or(""), "it's broken");
  CAF_CHECK_EQUAL(job::to_string(j.steps[0].status), std::string{"failed"});
  CAF_CHECK_EQUAL(job::to_string(j.steps[0].fallback_status.value()), std::string{"done"});
  CAF_CHECK_EQUAL(job::to_string(j.steps[1].status), std::string{"skipped"});
  CAF_CHECK_EQUAL(job::to_string(j.steps[1].fallback_status.value()), std::string{"skipped"});
  CAF_CHECK_EQUAL(job::to_string(j.fallback_status.value()), std::string{"done"});
  for (auto& st : write_statuses())
    CAF_CHECK_EQUAL(st, "running->running"); // never a final write of its own
}

CAF_TEST(a step runs under the smaller of its timeout and the cap and fallbacks under the cap) {
  env->caps[user] = 5000;
  auto t = ticket(R"({"query": {"query": [
      {"query": "SHORT", "timeout": 100, "onsuccess": "FALLBACK"},
      {"query": "LONG", "timeout": 100000},
      {"query": "PLAIN"}]}})");
  auto o = run_job(t);
  CAF_CHECK_EQUAL(o.status, "done");
  CAF_REQUIRE_EQUAL(sql->script->statements.size(), 4u);
  CAF_CHECK_EQUAL(sql->script->statements[0].timeout_ms, 100);
  CAF_CHECK_EQUAL(sql->script->statements[1].sql, "FALLBACK");
  CAF_CHECK_EQUAL(sql->script->statements[1].timeout_ms, 5000);
  CAF_CHECK_EQUAL(sql->script->statements[2].timeout_ms, 5000);
  CAF_CHECK_EQUAL(sql->script->statements[3].timeout_ms, 5000);
}

CAF_TEST(a cancel that arrives before the runner starts the statement ends the job cancelled) {
  // The canceller fired before the runner even armed: a tombstone.
  CAF_CHECK(!registry->cancel(job_id, stop_reason::user_cancel));
  auto t = ticket(R"({"query": ["STEP A", "STEP B"]})");
  auto o = run_job(t);
  CAF_CHECK_EQUAL(o.status, "cancelled");
  CAF_CHECK_EQUAL(to_string(o.how), std::string{"finished"});
  CAF_CHECK_EQUAL(o.statements_run, 0);
  CAF_CHECK(sql->script->statements.empty());
  CAF_CHECK_EQUAL(sql->script->unsent, 0); // execute was not even called
  CAF_CHECK(writes->entries.empty());
  auto j = stored(t);
  CAF_CHECK_EQUAL(job::to_string(j.steps[0].status), std::string{"skipped"});
  CAF_CHECK_EQUAL(job::to_string(j.steps[1].status), std::string{"skipped"});
}

CAF_TEST(a cancel between run and the first step still wins) {
  auto t = ticket(R"js({"query": "SELECT pg_sleep(10)"})js");
  self->send(runner, run_atom::value, t);
  expect((run_atom, job_ticket), from(self).to(runner));
  CAF_CHECK(registry->armed(job_id));
  CAF_CHECK(registry->cancel(job_id, stop_reason::user_cancel));
  sched.run();
  auto o = outcome();
  CAF_CHECK_EQUAL(o.status, "cancelled");
  CAF_CHECK(sql->script->statements.empty());
  CAF_CHECK(sql->script->connects.empty());
  CAF_CHECK(writes->entries.empty());
}

CAF_TEST(a cancel while a step runs cancels that step and skips the rest) {
  auto t = ticket(R"({"query": {"query": [
      {"query": "STEP A", "onerror": "A ONERROR"},
      {"query": "STEP B"}], "onsuccess": "JOB OK"}})");
  sql->script->answers["STEP A"] = batchq::test::fake_answer::hook(
    [this] { registry->cancel(job_id, stop_reason::user_cancel); });
  auto o = run_job(t);
  CAF_CHECK_EQUAL(o.status, "cancelled");
  CAF_CHECK_EQUAL(o.statements_run, 1);
  CAF_CHECK_EQUAL(sql->script->sqls(), strings{"STEP A"});
  CAF_CHECK_EQUAL(write_statuses(), strings({"running->running"}));
  auto j = stored(t);
  CAF_CHECK_EQUAL(job::to_string(j.status), std::string{"cancelled"});
  CAF_CHECK_EQUAL(job::to_string(j.steps[0].status), std::string{"cancelled"});
  CAF_CHECK_EQUAL(job::to_string(j.steps[0].fallback_status.value()), std::string{"skipped"});
  CAF_CHECK_EQUAL(job::to_string(j.steps[1].status), std::string{"skipped"});
  CAF_CHECK_EQUAL(job::to_string(j.fallback_status.value()), std::string{"skipped"});
}

CAF_TEST(a drain answers the job pending with its interrupted step pending) {
  auto t = ticket(R"({"query": ["STEP A", "STEP B"]})");
  sql->script->answers["STEP B"] = batchq::test::fake_answer::hook(
    [this] { registry->cancel_user(user, "lease-token", stop_reason::drain); });
  auto o = run_job(t);
  CAF_CHECK_EQUAL(to_string(o.how), std::string{"drained"});
  CAF_CHECK_EQUAL(o.status, "pending");
  CAF_CHECK_EQUAL(o.written_status, "running");
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"STEP A", "STEP B"}));
  CAF_CHECK_EQUAL(write_statuses(),
                  strings({"running->running", "running->running", "running->running"}));
  auto j = stored(t);
  CAF_CHECK_EQUAL(job::to_string(j.status), std::string{"pending"});
  CAF_CHECK_EQUAL(job::to_string(j.steps[0].status), std::string{"done"});
  CAF_CHECK_EQUAL(job::to_string(j.steps[1].status), std::string{"pending"});
}

CAF_TEST(a lost lease stops the job writing nothing more and answers what it knows) {
  auto t = ticket(R"({"query": ["STEP A", "STEP B"]})");
  sql->script->answers["STEP A"] = batchq::test::fake_answer::hook(
    [this] { registry->cancel_user(user, "lease-token", stop_reason::lease_lost); });
  auto o = run_job(t);
  CAF_CHECK_EQUAL(to_string(o.how), std::string{"lost"});
  CAF_CHECK_EQUAL(o.status, "running");
  CAF_CHECK_EQUAL(sql->script->sqls(), strings{"STEP A"});
  CAF_CHECK_EQUAL(write_statuses(), strings{"running->running"});
  CAF_CHECK(!registry->armed(job_id));
  // STEP A was stopped before it completed: it is still the running step.
  auto j = stored(t);
  CAF_CHECK_EQUAL(job::to_string(j.steps[0].status), std::string{"running"});
}

CAF_TEST(a statement that completed before the lease was lost keeps its outcome) {
  auto t = ticket(R"({"query": ["STEP A", "STEP B"]})");
  writes->refuse = [](size_t i, const turn_request&) -> caf::error {
    if (i == 1) // the write of STEP A's outcome: the lease is gone by now
      return make_error(ec::lease_lost, "lease of user alice is not held by this token");
    return {};
  };
  auto o = run_job(t);
  CAF_CHECK_EQUAL(to_string(o.how), std::string{"lost"});
  CAF_CHECK_EQUAL(sql->script->sqls(), strings{"STEP A"});
  auto j = stored(t);
  CAF_CHECK_EQUAL(job::to_string(j.steps[0].status), std::string{"done"});
  CAF_CHECK_EQUAL(job::to_string(j.steps[1].status), std::string{"pending"});
}

CAF_TEST(a statement is never sent once the lease deadline passed) {
  registry->lease("lease-token")->set(pg::lease_deadline::clock::now()
                                      - std::chrono::milliseconds{1});
  auto t = ticket(R"({"query": ["STEP A", "STEP B"]})");
  auto o = run_job(t);
  CAF_CHECK_EQUAL(to_string(o.how), std::string{"lost"});
  CAF_CHECK(sql->script->statements.empty());
  CAF_CHECK(writes->entries.empty());
}

CAF_TEST(a progress write that fails transiently is retried and the statement waits for it) {
  int failures = 2;
  writes->refuse = [&](size_t, const turn_request&) -> caf::error {
    if (failures-- > 0)
      return make_error(ec::redis_unavailable, "fake Redis is down");
    return {};
  };
  auto t = ticket(R"({"query": "SELECT 1"})");
  self->send(runner, run_atom::value, t);
  sched.run();
  CAF_CHECK_EQUAL(writes->entries.size(), 1u);
  CAF_CHECK(sql->script->statements.empty()); // not before the `running` write landed
  advance_time(cfg.retry_initial);
  sched.run();
  CAF_CHECK_EQUAL(writes->entries.size(), 2u);
  CAF_CHECK(sql->script->statements.empty());
  advance_time(cfg.retry_initial * 2);
  sched.run();
  auto o = outcome();
  CAF_CHECK_EQUAL(o.status, "done");
  CAF_CHECK_EQUAL(writes->entries.size(), 3u);
  CAF_CHECK_EQUAL(sql->script->sqls(), strings{"SELECT 1"});
  // Every attempt was the same write.
  CAF_CHECK(writes->entries[0] == writes->entries[1]);
  CAF_CHECK(writes->entries[1] == writes->entries[2]);
}

CAF_TEST(a drain during the retries of a progress write ends the job without it) {
  writes->refuse = [](size_t, const turn_request&) -> caf::error {
    return make_error(ec::redis_unavailable, "fake Redis is down");
  };
  auto t = ticket(R"({"query": ["STEP A", "STEP B"]})");
  self->send(runner, run_atom::value, t);
  sched.run();
  registry->cancel_user(user, "lease-token", stop_reason::drain);
  advance_time(cfg.retry_initial);
  sched.run();
  auto o = outcome();
  CAF_CHECK_EQUAL(to_string(o.how), std::string{"drained"});
  CAF_CHECK(sql->script->statements.empty());
}

CAF_TEST(a password that cannot be read because Redis is unreachable is read again later) {
  env->unreachable_passwords = 2;
  auto t = ticket(R"({"query": "SELECT 1"})");
  self->send(runner, run_atom::value, t);
  sched.run();
  CAF_CHECK(sql->script->statements.empty());
  advance_time(cfg.retry_initial);
  sched.run();
  CAF_CHECK(sql->script->statements.empty());
  advance_time(cfg.retry_initial * 2);
  sched.run();
  auto o = outcome();
  CAF_CHECK_EQUAL(o.status, "done");
  CAF_CHECK_EQUAL(sql->script->sqls(), strings{"SELECT 1"});
  CAF_CHECK_EQUAL(env->password_lookups, 3);
}

CAF_TEST(a timeout cap that cannot be read is read again and never replaced by the default) {
  env->caps[user] = 1234;
  env->failure = make_error(ec::redis_unavailable, "fake Redis is down");
  auto t = ticket(R"({"query": "SELECT 1"})");
  self->send(runner, run_atom::value, t);
  sched.run();
  CAF_CHECK(writes->entries.empty());
  env->failure.reset();
  advance_time(cfg.retry_initial);
  sched.run();
  auto o = outcome();
  CAF_CHECK_EQUAL(o.status, "done");
  CAF_REQUIRE_EQUAL(sql->script->statements.size(), 1u);
  CAF_CHECK_EQUAL(sql->script->statements[0].timeout_ms, 1234);
}

CAF_TEST(missing credentials fail the job and its fallbacks without touching PostgreSQL) {
  env->passwords.clear();
  auto t = ticket(R"({"query": {"query": [
      {"query": "STEP A", "onerror": "A ONERROR"}, {"query": "STEP B"}]}})");
  auto o = run_job(t);
  CAF_CHECK_EQUAL(o.status, "failed");
  CAF_CHECK_EQUAL(o.statements_run, 0);
  CAF_CHECK(sql->script->connects.empty());
  CAF_CHECK(sql->script->statements.empty());
  auto j = stored(t);
  const std::string reason = "cannot connect to the database: no credentials for role alice_role";
  CAF_CHECK_EQUAL(j.failed_reason.value_or(""), reason);
  CAF_CHECK_EQUAL(job::to_string(j.steps[0].status), std::string{"failed"});
  CAF_CHECK_EQUAL(job::to_string(j.steps[0].fallback_status.value()), std::string{"failed"});
  CAF_CHECK_EQUAL(j.steps[0].fallback_failed_reason.value_or(""), reason);
  CAF_CHECK_EQUAL(job::to_string(j.steps[1].status), std::string{"skipped"});
  CAF_CHECK_EQUAL(env->password_lookups, 1); // sticky: looked up once
}

CAF_TEST(a connect failure fails the job with its message) {
  sql->script->connect_error =
    make_error(ec::pg_connect_failed, "cannot connect to the database: Connection refused");
  auto o = run_job(ticket(R"({"query": "SELECT 1"})"));
  CAF_CHECK_EQUAL(o.status, "failed");
  CAF_CHECK_EQUAL(field(o.set, "failed_reason"),
                  "cannot connect to the database: Connection refused");
  CAF_CHECK_EQUAL(sql->script->connects.size(), 1u);
}

CAF_TEST(a CARTO record with a pass field connects with it) {
  auto t = ticket(R"({"query": "SELECT 1"})");
  t.record.emplace_back("pass", "carto-pass");
  env->passwords.clear();
  auto o = run_job(t);
  CAF_CHECK_EQUAL(o.status, "done");
  CAF_CHECK_EQUAL(env->password_lookups, 0);
  CAF_REQUIRE_EQUAL(sql->script->connects.size(), 1u);
  CAF_CHECK_EQUAL(sql->script->connects[0].password, "carto-pass");
  for (const auto& r : writes->entries)
    CAF_CHECK_EQUAL(field(r.write.at(0).set, "pass"), "<absent>");
  CAF_CHECK_EQUAL(field(o.set, "pass"), "<absent>");
}

CAF_TEST(a lost connection fails the step and the next statement reconnects) {
  auto t = ticket(R"({"query": {"query": [{"query": "STEP A", "onerror": "A ONERROR"}]}})");
  sql->script->answers["STEP A"] = batchq::test::fake_answer::lost();
  auto o = run_job(t);
  CAF_CHECK_EQUAL(o.status, "failed");
  CAF_CHECK_EQUAL(sql->script->sqls(), strings({"STEP A", "A ONERROR"}));
  CAF_CHECK_EQUAL(sql->script->connects.size(), 2u);
  CAF_CHECK_EQUAL(stored(t).failed_reason.value_or(""),
                  "connection to the database was lost: fake");
}

CAF_TEST(a progress write refused as changed aborts the job before the next statement) {
  writes->refuse = [](size_t i, const turn_request&) -> caf::error {
    if (i == 1)
      return make_error(ec::invalid_transition, "job status is now cancelled");
    return {};
  };
  auto t = ticket(R"({"query": ["STEP A", "STEP B"]})");
  auto o = run_job(t);
  CAF_CHECK_EQUAL(to_string(o.how), std::string{"aborted"});
  CAF_CHECK_EQUAL(sql->script->sqls(), strings{"STEP A"});
  CAF_CHECK_EQUAL(writes->entries.size(), 2u);
}

CAF_TEST(a statement stopped by another nodes pg_cancel_backend for a users cancel is cancelled) {
  auto t = ticket(R"({"query": ["STEP A", "STEP B"]})");
  writes->cancel_marks.insert(t.job_id); // the Redis half of the user's cancel left it
  // Any 57014 text: a cancel is known by the code and the mark, not by words.
  sql->script->answers["STEP A"] = batchq::test::fake_answer::fail("57014", "annulation");
  auto o = run_job(t);
  CAF_CHECK_EQUAL(o.status, "cancelled");
  CAF_CHECK_EQUAL(writes->marks_asked, strings{t.job_id});
  auto j = stored(t);
  CAF_CHECK_EQUAL(job::to_string(j.steps[0].status), std::string{"cancelled"});
  CAF_CHECK_EQUAL(job::to_string(j.steps[1].status), std::string{"skipped"});
}

CAF_TEST(a 57014 that neither the token nor a users cancel caused fails the step) {
  // E.g. an operator's pg_cancel_backend: the English text of a user's cancel
  // is no longer taken for one.
  auto t = ticket(R"({"query": ["STEP A", "STEP B"]})");
  sql->script->answers["STEP A"] =
    batchq::test::fake_answer::fail("57014", "canceling statement due to user request");
  auto o = run_job(t);
  CAF_CHECK_EQUAL(o.status, "failed");
  CAF_CHECK_EQUAL(writes->marks_asked, strings{t.job_id});
  CAF_CHECK_EQUAL(stored(t).failed_reason.value_or(""),
                  "canceling statement due to user request");
}

CAF_TEST(a statement timeout fails the step with the message of PostgreSQL) {
  sql->script->answers["SLOW"] =
    batchq::test::fake_answer::fail("57014", "canceling statement due to statement timeout");
  auto t = ticket(R"({"query": "SLOW"})");
  auto o = run_job(t);
  CAF_CHECK_EQUAL(o.status, "failed");
  CAF_CHECK_EQUAL(stored(t).failed_reason.value_or(""),
                  "canceling statement due to statement timeout");
}

CAF_TEST(an unreadable record is answered failed rather than left running) {
  job_ticket t{job_id, user, "lease-token", {{"user", user}, {"status", "running"}}};
  auto o = run_job(t);
  CAF_CHECK_EQUAL(o.status, "failed");
  CAF_CHECK_EQUAL(to_string(o.how), std::string{"finished"});
  CAF_CHECK(writes->entries.empty());
  CAF_CHECK(field(o.set, "failed_reason").rfind("invalid job record: ", 0) == 0);
  CAF_CHECK(!registry->armed(job_id));
}

CAF_TEST(a runner killed before it finished disarms its token) {
  auto t = ticket(R"({"query": "SELECT 1"})");
  self->send(runner, run_atom::value, t);
  expect((run_atom, job_ticket), from(self).to(runner));
  CAF_CHECK(registry->armed(job_id));
  self->send_exit(runner, caf::exit_reason::user_shutdown);
  sched.run();
  CAF_CHECK(!registry->armed(job_id));
  CAF_CHECK(sql->script->statements.empty());
}

CAF_TEST_FIXTURE_SCOPE_END()
