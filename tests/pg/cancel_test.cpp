// Integration tests for cancel_token + session::execute and for
// cancel_backends_of_job, on the real PostgreSQL.
#include <algorithm>
#include <future>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

#include "messages/error.hpp"
#include "src/pg/backend_cancel.hpp"
#include "tests/pg/pg_fixture.hpp"

using namespace batchq::pg;
using namespace batchq::pg::test;
using batchq::test::unique_name;

namespace {

struct PgCancel : superuser_pool_test {};

} // namespace

TEST_F(PgCancel, CancelFromAnotherThreadStopsPgSleepWithin100Milliseconds) {
  auto c = conn();
  int pid = c->backend_pid();
  std::vector<int64_t> samples;
  for (int run = 0; run < 5; ++run) {
    auto token = cancel_token::make();
    auto fut = std::async(std::launch::async, [&] {
      return c->execute("job-cancel", "SELECT pg_sleep(10)", 60000, token.get());
    });
    ASSERT_TRUE(wait_until([&] { return backend_state(pid) == "active"; }));
    auto t0 = std::chrono::steady_clock::now();
    token->cancel();
    auto r = fut.get();
    auto ms = ms_since(t0);
    samples.push_back(ms);
    ASSERT_TRUE(r) << batchq::message_of(r.error());
    EXPECT_EQ(r->what, outcome::cancelled);
    EXPECT_TRUE(r->sent);
    EXPECT_EQ(r->error.sqlstate, "57014");
    EXPECT_EQ(r->error.message, "canceling statement due to user request");
    EXPECT_LT(ms, 1000);
  }
  std::sort(samples.begin(), samples.end());
  std::cout << "[ measure  ] cancel -> execute returned, ms:";
  for (auto s : samples)
    std::cout << ' ' << s;
  std::cout << " (median " << samples[2] << ")\n";
  EXPECT_LT(samples[2], 100);
}

TEST_F(PgCancel, TheConnectionIsReusableAfterACancel) {
  auto c = conn();
  int pid = c->backend_pid();
  auto token = cancel_token::make();
  auto fut = std::async(std::launch::async, [&] {
    return c->execute("job-reuse", "SELECT pg_sleep(10)", 0, token.get());
  });
  ASSERT_TRUE(wait_until([&] { return backend_state(pid) == "active"; }));
  token->cancel();
  auto r = fut.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, outcome::cancelled);
  auto next = c->execute("job-next", "SELECT 1", 0, cancel_token::make().get());
  ASSERT_TRUE(next);
  EXPECT_EQ(next->what, outcome::succeeded);
  EXPECT_EQ(c->backend_pid(), pid);
  EXPECT_FALSE(c->broken());
}

TEST_F(PgCancel, ACancelBeforeTheStatementStartsWinsAndNothingRuns) {
  auto t = unique_name("bq_cancel_first");
  admin_exec("CREATE TABLE " + t + " (x int)");
  auto c = conn();
  auto token = cancel_token::make();
  token->cancel();
  auto before = c->round_trips();
  auto r = c->execute("job-first", "INSERT INTO " + t + " VALUES (1)", 1000, token.get());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, outcome::cancelled);
  EXPECT_FALSE(r->sent);
  EXPECT_EQ(c->round_trips(), before);
  EXPECT_EQ(admin_value("SELECT count(*) FROM " + t), "0");
  // Every later statement of the same job is refused too.
  auto again = c->execute("job-first", "INSERT INTO " + t + " VALUES (2)", 1000, token.get());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->what, outcome::cancelled);
  EXPECT_EQ(admin_value("SELECT count(*) FROM " + t), "0");
  admin_exec("DROP TABLE " + t);
}

// Fires the cancel at random moments around the start of the statement
// (before SET statement_timeout, between it and the statement, while the
// statement is in flight but not yet running): the statement must never run
// to completion, i.e. a cancel is never lost.
TEST_F(PgCancel, ACancelRacingTheStartOfTheStatementIsNeverLost) {
  auto t = unique_name("bq_cancel_race");
  admin_exec("CREATE TABLE " + t + " (x int)");
  auto c = conn();
  std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> delay_us{0, 600};
  int sent = 0;
  for (int run = 0; run < 40; ++run) {
    auto token = cancel_token::make();
    auto d = std::chrono::microseconds{delay_us(rng)};
    // A new timeout each run forces the SET round trip too.
    auto timeout = 60000 + run;
    std::thread canceller{[token, d] {
      std::this_thread::sleep_for(d);
      token->cancel();
    }};
    auto t0 = std::chrono::steady_clock::now();
    auto r = c->execute("job-race", "SELECT pg_sleep(1); INSERT INTO " + t + " VALUES (1)",
                        timeout, token.get());
    auto ms = ms_since(t0);
    canceller.join();
    ASSERT_TRUE(r) << batchq::message_of(r.error());
    EXPECT_EQ(r->what, outcome::cancelled) << "run " << run << " delay " << d.count() << "us";
    EXPECT_LT(ms, 900) << "run " << run;
    sent += r->sent ? 1 : 0;
  }
  EXPECT_EQ(admin_value("SELECT count(*) FROM " + t), "0");
  std::cout << "[ measure  ] " << sent << "/40 statements were sent before the cancel\n";
  admin_exec("DROP TABLE " + t);
}

// The resend rule, made deterministic: this statement swallows the first
// cancel request (as a cancel lost in the start-up window would be lost), so
// only a repeated request can stop it.
TEST_F(PgCancel, ACancelSwallowedByTheStatementIsSentAgainUntilItStops) {
  auto c = conn();
  int pid = c->backend_pid();
  auto token = cancel_token::make();
  auto fut = std::async(std::launch::async, [&] {
    return c->execute("job-swallow",
                      "DO $$ BEGIN "
                      "  BEGIN PERFORM pg_sleep(10); EXCEPTION WHEN query_canceled THEN NULL; END; "
                      "  PERFORM pg_sleep(10); "
                      "END $$",
                      0, token.get());
  });
  ASSERT_TRUE(wait_until([&] { return backend_state(pid) == "active"; }));
  auto t0 = std::chrono::steady_clock::now();
  token->cancel();
  auto r = fut.get();
  auto ms = ms_since(t0);
  std::cout << "[ measure  ] swallowed cancel: execute returned after " << ms << " ms\n";
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, outcome::cancelled);
  EXPECT_EQ(r->error.message, "canceling statement due to user request");
  EXPECT_LT(ms, 1000);
}

TEST_F(PgCancel, CancelBackendsOfJobCancelsAStatementRunningOnAnotherConnection) {
  auto runner = conn();
  auto admin = conn(); // a second pooled connection, same superuser
  ASSERT_NE(runner->backend_pid(), admin->backend_pid());
  auto job = unique_name("job");
  auto fut = std::async(std::launch::async, [&] {
    return runner->execute(job, "SELECT pg_sleep(10)", 0);
  });
  int pid = runner->backend_pid();
  ASSERT_TRUE(wait_until([&] { return backend_state(pid) == "active"; }));
  auto t0 = std::chrono::steady_clock::now();
  auto n = cancel_backends_of_job(*admin, job);
  ASSERT_TRUE(n) << batchq::message_of(n.error());
  EXPECT_EQ(*n, 1);
  auto r = fut.get();
  EXPECT_LT(ms_since(t0), 1000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, outcome::failed); // no token: from this session's view a plain failure
  EXPECT_EQ(r->error.message, "canceling statement due to user request");
  // Nothing is running for that job any more.
  auto none = cancel_backends_of_job(*admin, job);
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0);
}

TEST_F(PgCancel, CancelBackendsOfJobMatchesTheJobIdLiterally) {
  auto runner = conn();
  auto admin = conn();
  auto job = unique_name("job_x"); // `_` would be a LIKE wildcard
  auto lookalike = job;
  lookalike[3] = 'Z'; // "job_x_..." -> "jobZx_..."
  auto fut = std::async(std::launch::async, [&] {
    return runner->execute(job, "SELECT pg_sleep(0.6)", 0);
  });
  int pid = runner->backend_pid();
  ASSERT_TRUE(wait_until([&] { return backend_state(pid) == "active"; }));
  auto n = cancel_backends_of_job(*admin, lookalike);
  ASSERT_TRUE(n) << batchq::message_of(n.error());
  EXPECT_EQ(*n, 0);
  auto prefix = cancel_backends_of_job(*admin, job.substr(0, job.size() - 1)); // a prefix of it
  ASSERT_TRUE(prefix);
  EXPECT_EQ(*prefix, 0);
  auto r = fut.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, outcome::succeeded);
}
