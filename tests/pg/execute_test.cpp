// Integration tests for session::execute on the real PostgreSQL: messages,
// timeouts, round trips, multi-statement strings, pg_stat_activity.
#include <unistd.h>

#include <fstream>
#include <future>
#include <thread>

#include "messages/error.hpp"
#include "tests/pg/pg_fixture.hpp"

using namespace batchq::pg;
using namespace batchq::pg::test;
using batchq::test::unique_name;

namespace {

struct PgExecute : superuser_pool_test {};

} // namespace

TEST_F(PgExecute, ASimpleStatementSucceeds) {
  auto c = conn();
  auto r = c->execute("job-1", "SELECT 1", 0);
  ASSERT_TRUE(r) << batchq::message_of(r.error());
  EXPECT_EQ(r->what, outcome::succeeded);
  EXPECT_TRUE(r->sent);
}

TEST_F(PgExecute, UnchangedTimeoutCostsOneRoundTripAndAChangedOneTwo) {
  auto c = conn();
  auto before = c->round_trips();
  ASSERT_TRUE(c->execute("job-rt", "SELECT 1", 1000)); // fresh session: timeout unknown
  EXPECT_EQ(c->round_trips() - before, 2u);
  before = c->round_trips();
  ASSERT_TRUE(c->execute("job-rt", "SELECT 1", 1000));
  EXPECT_EQ(c->round_trips() - before, 1u);
  before = c->round_trips();
  ASSERT_TRUE(c->execute("job-rt", "SELECT 1", 2000));
  EXPECT_EQ(c->round_trips() - before, 2u);
  EXPECT_EQ(c->known_timeout_ms(), 2000);
  EXPECT_EQ(admin_value("SELECT 1"), "1");
}

TEST_F(PgExecute, TheTimeoutReallyIsInEffectOnTheSession) {
  auto c = conn();
  auto r = c->execute("job-show", "DO $$ BEGIN IF current_setting('statement_timeout') <> '1234ms'"
                                  " THEN RAISE EXCEPTION 'timeout is %', "
                                  "current_setting('statement_timeout'); END IF; END $$",
                      1234);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, outcome::succeeded) << r->error.message;
}

TEST_F(PgExecute, StatementTimeoutFailsPgSleepAndTheConnectionIsReused) {
  auto c = conn();
  int pid = c->backend_pid();
  auto t0 = std::chrono::steady_clock::now();
  auto r = c->execute("job-timeout", "SELECT pg_sleep(5)", 200);
  auto ms = ms_since(t0);
  ASSERT_TRUE(r) << batchq::message_of(r.error());
  EXPECT_EQ(r->what, outcome::failed);
  EXPECT_EQ(r->error.sqlstate, "57014");
  EXPECT_EQ(r->error.message, "canceling statement due to statement timeout");
  EXPECT_LT(ms, 2000);
  auto again = c->execute("job-timeout", "SELECT 2", 200);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->what, outcome::succeeded);
  EXPECT_EQ(c->backend_pid(), pid);
}

TEST_F(PgExecute, SyntaxErrorMessageHasNoPrefixNorLineDetail) {
  auto c = conn();
  auto r = c->execute("job-syntax", "SELEC 1", 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, outcome::failed);
  EXPECT_EQ(r->error.sqlstate, "42601");
  EXPECT_EQ(r->error.message, "syntax error at or near \"SELEC\"");
}

TEST_F(PgExecute, MissingRelationGivesPostgresPrimaryMessage) {
  auto c = conn();
  auto r = c->execute("job-missing", "SELECT * FROM nonexistent_table", 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, outcome::failed);
  EXPECT_EQ(r->error.sqlstate, "42P01");
  EXPECT_EQ(r->error.message, "relation \"nonexistent_table\" does not exist");
}

TEST_F(PgExecute, AMultiStatementStringRunsEveryStatement) {
  auto t = unique_name("bq_multi");
  auto c = conn();
  auto r = c->execute("job-multi", "CREATE TABLE " + t + " (x int); INSERT INTO " + t
                                     + " VALUES (1), (2); UPDATE " + t + " SET x = x * 10",
                      0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, outcome::succeeded) << r->error.message;
  EXPECT_EQ(admin_value("SELECT sum(x) FROM " + t), "30");
  admin_exec("DROP TABLE " + t);
}

TEST_F(PgExecute, RowsOfAJobStatementAreReadOneAtATimeNotHeldInMemory) {
  auto c = conn();
  // Two results of about 100 MB each in one string: were either read whole,
  // libpq would hold all of it at once.
  const std::string big = "SELECT g, repeat('x', 1000) FROM generate_series(1, 100000) g";
  std::ofstream{"/proc/self/clear_refs"} << "5"; // VmHWM := VmRSS (Linux >= 4.0)
  auto rss_before = batchq::test::proc_status_kb(::getpid(), "VmRSS:");
  ASSERT_GT(rss_before, 0);
  auto r = c->execute("job-big", big + "; " + big, 0);
  ASSERT_TRUE(r) << batchq::message_of(r.error());
  EXPECT_EQ(r->what, outcome::succeeded) << r->error.message;
  auto grew_mb = (batchq::test::proc_status_kb(::getpid(), "VmHWM:") - rss_before) / 1024;
  EXPECT_LT(grew_mb, 64) << "the test process peaked " << grew_mb << " MB above its size";
  EXPECT_TRUE(c->idle_outside_transaction());
}

TEST_F(PgExecute, AFailingStatementRollsBackTheEarlierOnesOfItsString) {
  auto t = unique_name("bq_multi_fail");
  auto c = conn();
  auto r = c->execute("job-multi-fail",
                      "CREATE TABLE " + t + " (x int); INSERT INTO " + t + " VALUES (1); SELECT 1/0",
                      0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, outcome::failed);
  EXPECT_EQ(r->error.sqlstate, "22012");
  EXPECT_EQ(r->error.message, "division by zero");
  EXPECT_EQ(admin_value("SELECT to_regclass('" + t + "') IS NULL"), "t");
  EXPECT_TRUE(c->idle_outside_transaction());
}

TEST_F(PgExecute, JobPrefixAndApplicationNameAreVisibleInPgStatActivity) {
  auto c = conn();
  int pid = c->backend_pid();
  auto job = unique_name("job");
  auto fut = std::async(std::launch::async,
                        [&] { return c->execute(job, "SELECT pg_sleep(0.5)", 5000); });
  ASSERT_TRUE(wait_until([&] { return backend_state(pid) == "active"; }));
  auto row = admin_value("SELECT application_name || '|' || query FROM pg_stat_activity "
                         "WHERE pid = "
                         + std::to_string(pid));
  EXPECT_EQ(row, "batchq|/* " + job + " */ SELECT pg_sleep(0.5)");
  auto r = fut.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, outcome::succeeded);
}

TEST_F(PgExecute, AJobIdThatCouldBreakTheCommentIsRefusedWithoutSending) {
  auto c = conn();
  auto before = c->round_trips();
  for (const char* bad : {"", "a */ DROP TABLE x; /*", "a/*b", "a b"}) {
    auto r = c->execute(bad, "SELECT 1", 0);
    ASSERT_FALSE(r) << bad;
    EXPECT_TRUE(batchq::is(r.error(), batchq::ec::invalid_job));
  }
  EXPECT_EQ(c->round_trips(), before);
  EXPECT_FALSE(c->broken());
}

TEST_F(PgExecute, ANulByteInTheQueryFailsTheStatementWithoutSendingIt) {
  auto c = conn();
  auto before = c->round_trips();
  auto r = c->execute("job-nul", std::string{"SELECT 1\0; DROP TABLE x", 23}, 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, outcome::failed);
  EXPECT_FALSE(r->sent);
  EXPECT_EQ(c->round_trips(), before);
}

TEST_F(PgExecute, AJobThatChangesStatementTimeoutMakesTheNextExecuteSetItAgain) {
  auto c = conn();
  ASSERT_TRUE(c->execute("job-set", "SET statement_timeout = 0", 1000));
  EXPECT_EQ(c->known_timeout_ms(), std::nullopt);
  auto before = c->round_trips();
  auto r = c->execute("job-set", "SELECT pg_sleep(5)", 100);
  ASSERT_TRUE(r);
  EXPECT_EQ(c->round_trips() - before, 2u);
  EXPECT_EQ(r->error.sqlstate, "57014");
}

TEST_F(PgExecute, ATimeoutSetInsideARolledBackTransactionIsSetAgain) {
  auto c = conn();
  ASSERT_TRUE(c->execute("job-tx", "SELECT 1", 1000));
  ASSERT_TRUE(c->execute("job-tx", "BEGIN", 1000));
  ASSERT_TRUE(c->execute("job-tx", "SELECT 1", 3000)); // SET inside the transaction block
  ASSERT_TRUE(c->execute("job-tx", "ROLLBACK", 1000)); // ... undone here
  auto r = c->execute("job-tx", "SELECT pg_sleep(5)", 3000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error.message, "canceling statement due to statement timeout");
}

TEST_F(PgExecute, CopyToStdoutIsDrainedAndCopyFromStdinFailsCleanly) {
  auto c = conn();
  auto out = c->execute("job-copy", "COPY (SELECT generate_series(1, 1000)) TO STDOUT", 0);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->what, outcome::succeeded);
  auto t = unique_name("bq_copy");
  ASSERT_TRUE(c->execute("job-copy", "CREATE TABLE " + t + " (x int)", 0));
  auto in = c->execute("job-copy", "COPY " + t + " FROM STDIN", 0);
  ASSERT_TRUE(in);
  EXPECT_EQ(in->what, outcome::failed);
  EXPECT_EQ(in->error.sqlstate, "57014");
  EXPECT_EQ(in->error.message,
            "COPY from stdin failed: COPY FROM STDIN is not supported in batch jobs");
  auto next = c->execute("job-copy", "DROP TABLE " + t, 0);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->what, outcome::succeeded);
}

TEST_F(PgExecute, AnOpenTransactionBlockIsNotReturnedToThePool) {
  auto t = unique_name("bq_open_tx");
  {
    auto c = conn();
    ASSERT_TRUE(c->execute("job-open", "BEGIN; CREATE TABLE " + t + " (x int)", 0));
    EXPECT_FALSE(c->idle_outside_transaction());
  }
  EXPECT_EQ(p.idle_count(superuser_key()), 0u);
  // Closing the connection rolled the transaction back.
  EXPECT_TRUE(wait_until([&] { return admin_value("SELECT to_regclass('" + t + "') IS NULL") == "t"; }));
}
