// Integration tests on the real PostgreSQL for what a pooled connection
// carries from one job to the next (nothing: the reset), for templated
// fallbacks under standard_conforming_strings = off, and for the bounds of
// every wait: a statement that lifts its own timeout, and a connection that
// goes silent (tests/support/tcp_proxy.hpp stops forwarding).
#include <chrono>
#include <future>

#include "messages/error.hpp"
#include "src/job/template.hpp"
#include "tests/pg/pg_fixture.hpp"
#include "tests/support/tcp_proxy.hpp"

using namespace batchq::pg;
using namespace batchq::pg::test;
using batchq::test::unique_name;

namespace {

pool_config short_grace(size_t idle = 1) {
  pool_config cfg;
  cfg.max_idle_per_key = idle;
  cfg.session.result_grace = std::chrono::milliseconds{300};
  return cfg;
}

std::string value(pooled_connection& c, const std::string& sql) {
  auto v = c->query_value(sql, {});
  if (!v)
    return "error: " + batchq::message_of(v.error());
  return v->value_or("<null>");
}

} // namespace

TEST(PgCleanSession, NothingAJobChangesInItsSessionReachesTheNextJob) {
  pool p{short_grace()};
  int pid = 0;
  {
    auto c = p.acquire(superuser_key(), "");
    ASSERT_TRUE(c);
    pid = (*c)->backend_pid();
    auto r = (*c)->execute("job-dirty",
                           "SET search_path = pg_catalog; SET standard_conforming_strings = off; "
                           "SET application_name = 'dirty'; SET work_mem = '77MB'; "
                           "CREATE TEMP TABLE leftover (a int); SELECT pg_advisory_lock(424242); "
                           "PREPARE leftover_plan AS SELECT 1; LISTEN leftover_channel; "
                           "SET ROLE pg_monitor",
                           1000);
    ASSERT_TRUE(r) << batchq::message_of(r.error());
    ASSERT_EQ(r->what, outcome::succeeded) << r->error.message;
    ASSERT_EQ(value(*c, "SELECT current_user"), "pg_monitor");
  } // back to the pool: the reset is sent
  auto c = p.acquire(superuser_key(), "");
  ASSERT_TRUE(c);
  ASSERT_EQ((*c)->backend_pid(), pid) << "the same backend, reused";
  EXPECT_EQ(value(*c, "SELECT current_user"), "postgres");
  EXPECT_EQ(value(*c, "SELECT current_setting('search_path')"), "\"$user\", public");
  EXPECT_EQ(value(*c, "SELECT current_setting('standard_conforming_strings')"), "on");
  EXPECT_EQ(value(*c, "SELECT current_setting('application_name')"), "batchq");
  EXPECT_EQ(value(*c, "SELECT current_setting('work_mem')"), "4MB");
  EXPECT_EQ(value(*c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                      "AND pid = pg_backend_pid()"),
            "0");
  EXPECT_EQ(value(*c, "SELECT to_regclass('pg_temp.leftover') IS NULL"), "t");
  EXPECT_EQ(value(*c, "SELECT count(*) FROM pg_prepared_statements"), "0");
  EXPECT_EQ(value(*c, "SELECT count(*) FROM pg_listening_channels()"), "0");
  // The reset re-sets the last statement_timeout in its own round trip: the
  // next job with the same cap needs no SET.
  EXPECT_EQ(value(*c, "SELECT current_setting('statement_timeout')"), "1s");
  auto before = (*c)->round_trips();
  ASSERT_TRUE((*c)->execute("job-next", "SELECT 1", 1000));
  EXPECT_EQ((*c)->round_trips() - before, 1u);
  // A server 14+ checks that its client is still there while a statement runs.
  EXPECT_EQ(value(*c, "SELECT current_setting('client_connection_check_interval')"), "5s");
}

TEST(PgCleanSession, ATemplatedFallbackQuotesTheErrorMessageSafelyWhenTheRoleDefaultIsOff) {
  auto role = unique_name("bq_scs_off");
  auto table = unique_name("bq_scs_t");
  admin_exec("CREATE ROLE " + role + " LOGIN PASSWORD 'pw'");
  admin_exec("ALTER ROLE " + role + " SET standard_conforming_strings = off");
  admin_exec("CREATE TABLE " + table + " (msg text)");
  admin_exec("GRANT INSERT ON " + table + " TO " + role);
  pool p{short_grace()};
  pool_key key{"127.0.0.1", static_cast<uint16_t>(batchq::test::pg_port()), "postgres", role};
  // An error message that ends a literal early when backslashes escape quotes.
  std::string message = R"(a \' b'); SELECT 1/0; --)";
  auto sql = batchq::job::render_template(
    "INSERT INTO " + table + " VALUES ('<%= error_message %>')", "job-scs", message);
  {
    auto c = p.acquire(key, "pw");
    ASSERT_TRUE(c) << batchq::message_of(c.error());
    ASSERT_EQ(value(*c, "SELECT current_setting('standard_conforming_strings')"), "off");
    // Without the flag the text is read with backslash escapes: not the message.
    auto plain = (*c)->execute("job-scs", sql, 1000, nullptr, false);
    ASSERT_TRUE(plain);
    auto first = admin_value("SELECT count(*) FROM " + table + " WHERE msg = "
                             + pqxx::connection{batchq::test::pg_conninfo()}.quote(message));
    EXPECT_EQ(first, "0");
    // With it (what the runner passes for a templated fallback): the message exactly.
    auto safe = (*c)->execute("job-scs", sql, 1000, nullptr, true);
    ASSERT_TRUE(safe) << batchq::message_of(safe.error());
    EXPECT_EQ(safe->what, outcome::succeeded) << safe->error.message;
  }
  pqxx::connection admin{batchq::test::pg_conninfo()};
  EXPECT_EQ(admin_value("SELECT count(*) FROM " + table + " WHERE msg = " + admin.quote(message)),
            "1");
  p.clear();
  admin_exec("DROP TABLE " + table);
  admin_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + role
             + "'");
  wait_until([&] {
    return admin_value("SELECT count(*) FROM pg_stat_activity WHERE usename = '" + role + "'")
           == "0";
  });
  admin_exec("DROP ROLE " + role);
}

TEST(PgTimeouts, AStatementThatLiftsItsOwnTimeoutIsCancelledByBatchqPastTheGrace) {
  pool p{short_grace()};
  auto c = p.acquire(superuser_key(), "");
  ASSERT_TRUE(c);
  auto t0 = std::chrono::steady_clock::now();
  auto r = (*c)->execute("job-lift", "SET statement_timeout = 0; SELECT pg_sleep(20)", 500);
  auto took = ms_since(t0);
  ASSERT_TRUE(r) << batchq::message_of(r.error());
  EXPECT_EQ(r->what, outcome::failed);
  EXPECT_EQ(r->error.sqlstate, "57014");
  EXPECT_EQ(r->error.message,
            "canceling statement due to statement timeout (500 ms, enforced by batchq)");
  EXPECT_GE(took, 500 + 300);
  EXPECT_LT(took, 5000);
  EXPECT_FALSE((*c)->broken());
  auto next = (*c)->execute("job-lift-next", "SELECT 1", 500);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->what, outcome::succeeded);
}

TEST(PgTimeouts, AConnectionThatGoesSilentFailsItsStatementWithinTheBound) {
  batchq::test::tcp_proxy proxy{static_cast<uint16_t>(batchq::test::pg_port())};
  pool p{short_grace()};
  pool_key key{"127.0.0.1", proxy.port(), "postgres", "postgres"};
  auto c = p.acquire(key, "");
  ASSERT_TRUE(c) << batchq::message_of(c.error());
  auto job = unique_name("job_silent");
  auto t0 = std::chrono::steady_clock::now();
  auto fut = std::async(std::launch::async, [&] {
    return (*c)->execute(job, "SELECT pg_sleep(30)", 1000);
  });
  ASSERT_TRUE(wait_until([&] {
    return admin_value("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND "
                       "query LIKE '/* " + job + " */%'")
           == "1";
  }));
  proxy.stall(); // the server's answer (statement timeout at 1 s) never arrives
  auto r = fut.get();
  auto took = ms_since(t0);
  ASSERT_FALSE(r);
  EXPECT_TRUE(batchq::is(r.error(), batchq::ec::pg_connection_lost));
  EXPECT_EQ(batchq::message_of(r.error()),
            "connection to the database was lost: no answer from the database server in time "
            "(the connection is presumed lost)");
  // timeout 1 s + grace (cancel, which cannot get through either) + grace.
  EXPECT_GE(took, 1000 + 2 * 300);
  EXPECT_LT(took, 8000);
  EXPECT_TRUE((*c)->broken());
}
