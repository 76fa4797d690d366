// The job runner's real ports against a real Redis (DB 12) and PostgreSQL:
// ports::redis_job_environment (password lookup, per-user timeout cap, cache),
// ports::pg_sql_connector (pooled sessions) and ports::pg_backend_cancel (the
// canceller's pg_cancel_backend fallback, and the recovery's
// stop_backends_of_job), and a detached job runner whose pg_sleep is cancelled.
// Every test uses its own user and role names, so parallel test processes do
// not meet. A test that acts on a running statement first waits (bounded
// polling of pg_stat_activity) until that very statement runs.
#include <chrono>
#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <caf/all.hpp>

#include "actors/job_runner.hpp"
#include "messages/error.hpp"
#include "messages/type_ids.hpp"
#include "src/job/parse.hpp"
#include "src/job/record.hpp"
#include "src/pg/cancel_token.hpp"
#include "src/pg/pool.hpp"
#include "src/ports/pg_sql.hpp"
#include "src/ports/redis_job_environment.hpp"
#include "src/redis/client.hpp"
#include "src/redis/keys.hpp"
#include "tests/support/test_env.hpp"

using namespace batchq;
using namespace std::chrono_literals;

namespace {

constexpr int test_db = 12;
constexpr int64_t default_cap = 43200000;

redis::endpoint test_endpoint() {
  return redis::endpoint{"127.0.0.1", static_cast<uint16_t>(test::redis_port()), test_db};
}

pg::pool_key superuser_key() {
  return pg::pool_key{"127.0.0.1", static_cast<uint16_t>(test::pg_port()), "postgres",
                      "postgres"};
}

void admin_exec(const std::string& sql) {
  pqxx::connection conn{test::pg_conninfo()};
  pqxx::nontransaction tx{conn};
  tx.exec(sql);
}

/// How many backends other than ours are active running a statement of
/// `job_id` that starts with `sql` (as sent: `/* <job_id> */ <sql>`).
int active_statements(pqxx::connection& conn, const std::string& job_id, const std::string& sql) {
  pqxx::nontransaction tx{conn};
  auto prefix = tx.quote("/* " + job_id + " */ " + sql);
  auto r = tx.exec("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                   "AND state = 'active' AND left(query, length(" + prefix + ")) = " + prefix);
  return r[0][0].as<int>();
}

int active_statements(const std::string& job_id, const std::string& sql = "") {
  pqxx::connection conn{test::pg_conninfo()};
  return active_statements(conn, job_id, sql);
}

/// Polls pg_stat_activity (bounded) until a backend runs `/* <job_id> */ <sql>...`.
/// Never throws (it may run on a helper thread).
bool wait_for_statement(const std::string& job_id, const std::string& sql,
                        std::chrono::milliseconds limit = 20s) {
  try {
    pqxx::connection conn{test::pg_conninfo()};
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (active_statements(conn, job_id, sql) > 0)
        return true;
      std::this_thread::sleep_for(10ms);
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "pg_stat_activity: " << e.what();
  }
  return false;
}

struct runner_ports : ::testing::Test {
  redis::client rc{test_endpoint()};
  std::string user = test::unique_name("rp");
  std::vector<std::string> keys;

  ~runner_ports() override {
    if (keys.empty())
      return;
    std::vector<std::string> del{"DEL"};
    del.insert(del.end(), keys.begin(), keys.end());
    rc.command(del);
  }

  void hset(const std::string& key, const std::vector<std::string>& fields_values) {
    keys.push_back(key);
    std::vector<std::string> cmd{"HSET", key};
    cmd.insert(cmd.end(), fields_values.begin(), fields_values.end());
    auto r = rc.command(cmd);
    ASSERT_TRUE(r) << message_of(r.error());
  }

  /// rails:users with master key `mk` whose role is `master_role`.
  void make_user(const std::string& master_role) {
    hset(redis::keys::rails_user(user), {"id", "1", "map_key", "mk", "database_host", "127.0.0.1"});
    hset(redis::keys::api_key(user, "mk"), {"user", user, "type", "master", "database_role",
                                            master_role, "database_password", "master-pw"});
  }
};

TEST_F(runner_ports, ThePasswordOfTheMasterKeysRoleComesFromTheMasterKeyRecord) {
  make_user(user + "_owner");
  ports::redis_job_environment env{test_endpoint(), default_cap};
  auto p = env.password(user, user + "_owner");
  ASSERT_TRUE(p) << message_of(p.error());
  ASSERT_TRUE(p->has_value());
  EXPECT_EQ(**p, "master-pw");
  EXPECT_EQ(env.round_trips(), 1u); // user_env: cap, map_key and the master record
}

TEST_F(runner_ports, TheCapAndTheMasterPasswordCostOneRoundTripTogether) {
  make_user(user + "_owner");
  hset(redis::keys::limits_batch(user), {"timeout", "1234"});
  ports::redis_job_environment env{test_endpoint(), default_cap, 30s};
  auto cap = env.timeout_cap_ms(user);
  ASSERT_TRUE(cap) << message_of(cap.error());
  EXPECT_EQ(*cap, 1234);
  auto p = env.password(user, user + "_owner");
  ASSERT_TRUE(p && p->has_value());
  EXPECT_EQ(**p, "master-pw");
  EXPECT_EQ(env.round_trips(), 1u);
}

TEST_F(runner_ports, AnotherRolesPasswordComesFromTheRoleIndexInTheSameRoundTrip) {
  make_user(user + "_owner");
  hset(redis::keys::api_key(user, "k1"), {"user", user, "type", "regular", "database_role",
                                          user + "_other", "database_password", "other-pw"});
  hset(redis::keys::api_key(user, "k2"), {"user", user, "type", "default", "database_role",
                                          user + "_reader", "database_password", "reader-pw"});
  hset(redis::keys::role_keys(user), {user + "_reader", "k2"});
  ports::redis_job_environment env{test_endpoint(), default_cap};
  auto p = env.password(user, user + "_reader");
  ASSERT_TRUE(p) << message_of(p.error());
  ASSERT_TRUE(p->has_value());
  EXPECT_EQ(**p, "reader-pw");
  EXPECT_EQ(env.round_trips(), 1u);
  // k1 has the role but the index does not name it: no SCAN finds it.
  auto unindexed = env.password(user, user + "_other");
  ASSERT_TRUE(unindexed);
  EXPECT_FALSE(unindexed->has_value());
  EXPECT_EQ(env.round_trips(), 2u);
  auto none = env.password(user, user + "_nobody");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST_F(runner_ports, AnIndexEntryWhoseRecordChangedRoleOrVanishedGivesNoPassword) {
  make_user(user + "_owner");
  hset(redis::keys::api_key(user, "k3"), {"user", user, "type", "regular", "database_role",
                                          user + "_moved", "database_password", "moved-pw"});
  hset(redis::keys::role_keys(user), {user + "_reader", "k3", user + "_gone", "k404"});
  ports::redis_job_environment env{test_endpoint(), default_cap, 0ms};
  auto moved = env.password(user, user + "_reader");
  ASSERT_TRUE(moved);
  EXPECT_FALSE(moved->has_value());
  auto gone = env.password(user, user + "_gone");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());
}

TEST_F(runner_ports, AUserWithoutAnyKeyHasNoPassword) {
  ports::redis_job_environment env{test_endpoint(), default_cap};
  auto p = env.password(user, "whoever");
  ASSERT_TRUE(p) << message_of(p.error());
  EXPECT_FALSE(p->has_value());
}

TEST_F(runner_ports, HitsAndMissesAreCachedForTheTtl) {
  make_user(user + "_owner");
  ports::redis_job_environment env{test_endpoint(), default_cap, 30s};
  ASSERT_TRUE(env.password(user, user + "_owner"));
  auto after_first = env.round_trips();
  auto again = env.password(user, user + "_owner");
  ASSERT_TRUE(again && again->has_value());
  EXPECT_EQ(**again, "master-pw");
  EXPECT_EQ(env.round_trips(), after_first);
  // A miss is remembered as long as a hit: no read per job for a role
  // nobody has.
  auto miss = env.password(user, user + "_late");
  ASSERT_TRUE(miss);
  EXPECT_FALSE(miss->has_value());
  auto after_miss = env.round_trips();
  ASSERT_TRUE(env.password(user, user + "_late"));
  EXPECT_EQ(env.round_trips(), after_miss);
  // Without a cache, a key indexed a moment later is seen at once.
  ports::redis_job_environment fresh{test_endpoint(), default_cap, 0ms};
  ASSERT_TRUE(fresh.password(user, user + "_late"));
  hset(redis::keys::api_key(user, "late"),
       {"database_role", user + "_late", "database_password", "late-pw"});
  hset(redis::keys::role_keys(user), {user + "_late", "late"});
  auto hit = fresh.password(user, user + "_late");
  ASSERT_TRUE(hit && hit->has_value());
  EXPECT_EQ(**hit, "late-pw");
}

TEST_F(runner_ports, TheTimeoutCapIsTheUsersLimitElseTheDefault) {
  ports::redis_job_environment env{test_endpoint(), 5000, 0ms};
  auto cap = env.timeout_cap_ms(user);
  ASSERT_TRUE(cap) << message_of(cap.error());
  EXPECT_EQ(*cap, 5000);
  hset(redis::keys::limits_batch(user), {"timeout", "60000"}); // higher than the default
  cap = env.timeout_cap_ms(user);
  ASSERT_TRUE(cap);
  EXPECT_EQ(*cap, 60000);
  hset(redis::keys::limits_batch(user), {"timeout", "not-a-number"});
  cap = env.timeout_cap_ms(user);
  ASSERT_TRUE(cap);
  EXPECT_EQ(*cap, 5000);
  hset(redis::keys::limits_batch(user), {"timeout", "0"});
  cap = env.timeout_cap_ms(user);
  ASSERT_TRUE(cap);
  EXPECT_EQ(*cap, 5000);
}

TEST_F(runner_ports, RunnersLookingUpNewUsersAtOnceEachGetTheirOwnUsersCap) {
  ports::redis_job_environment env{test_endpoint(), default_cap, 30s};
  hset(redis::keys::limits_batch(user + "-t2-7"), {"timeout", "777"});
  constexpr int threads = 4;
  constexpr int per_thread = 50;
  std::atomic<int> wrong{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        auto name = user + "-t" + std::to_string(t) + "-" + std::to_string(i);
        auto cap = env.timeout_cap_ms(name);
        auto want = name == user + "-t2-7" ? 777 : default_cap;
        if (!cap || *cap != want)
          ++wrong;
      }
    });
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(env.round_trips(), static_cast<uint64_t>(threads * per_thread)); // one per new user
}

TEST_F(runner_ports, ExpiredEntriesAreSweptSoUsersSeenOnceAreNotAllKept) {
  // 5,000 users seen once, each entry expired a millisecond later: the
  // cache sweeps them instead of keeping all 5,000 (no lookup reads them again).
  ports::redis_job_environment env{test_endpoint(), default_cap, 1ms};
  for (int i = 0; i < 5000; ++i)
    ASSERT_TRUE(env.timeout_cap_ms(user + "-once-" + std::to_string(i)));
  EXPECT_LT(env.cached_entries(), 4096u);
  // A user looked up again after the sweep is read again, and right.
  hset(redis::keys::limits_batch(user + "-once-0"), {"timeout", "4321"});
  auto cap = env.timeout_cap_ms(user + "-once-0");
  ASSERT_TRUE(cap);
  EXPECT_EQ(*cap, 4321);
}

TEST_F(runner_ports, PrimingReadsNewUsersInOneRoundTripAndTheirLookupsHitTheCache) {
  make_user(user + "_owner");
  hset(redis::keys::limits_batch(user), {"timeout", "2468"});
  ports::redis_job_environment env{test_endpoint(), default_cap, 30s};
  std::vector<std::string> users{user};
  for (int i = 0; i < 49; ++i)
    users.push_back(user + "-new-" + std::to_string(i));
  env.prime(users);
  EXPECT_EQ(env.round_trips(), 1u); // 50 users, one pipelined round trip
  auto cap = env.timeout_cap_ms(user);
  ASSERT_TRUE(cap);
  EXPECT_EQ(*cap, 2468);
  auto p = env.password(user, user + "_owner"); // the master key's, read ahead too
  ASSERT_TRUE(p && p->has_value());
  EXPECT_EQ(**p, "master-pw");
  for (size_t i = 1; i < users.size(); ++i) {
    auto c = env.timeout_cap_ms(users[i]);
    ASSERT_TRUE(c);
    EXPECT_EQ(*c, default_cap);
  }
  EXPECT_EQ(env.round_trips(), 1u); // every lookup above was a hit
  env.prime(users);
  EXPECT_EQ(env.round_trips(), 1u); // all cached: nothing sent
  // Without a cache there is nothing to read ahead into.
  ports::redis_job_environment uncached{test_endpoint(), default_cap, 0ms};
  uncached.prime(users);
  EXPECT_EQ(uncached.round_trips(), 0u);
}

TEST(PgSqlConnector, RunsAStatementAndASecondAcquireReusesTheConnection) {
  auto pool = std::make_shared<pg::pool>();
  ports::pg_sql_connector sql{pool};
  int pid = 0;
  {
    auto s = sql.connect(superuser_key(), "");
    ASSERT_TRUE(s) << message_of(s.error());
    auto r = (*s)->execute("job-a", "SELECT 1", 1000, nullptr, false, nullptr);
    ASSERT_TRUE(r) << message_of(r.error());
    EXPECT_TRUE(r->ok());
    auto* real = dynamic_cast<ports::pg_sql_session*>(s->get());
    ASSERT_NE(real, nullptr);
    EXPECT_FALSE(real->connection().reused());
    pid = real->connection()->backend_pid();
  }
  EXPECT_EQ(pool->idle_count(superuser_key()), 1u);
  auto s = sql.connect(superuser_key(), "");
  ASSERT_TRUE(s) << message_of(s.error());
  auto* real = dynamic_cast<ports::pg_sql_session*>(s->get());
  ASSERT_NE(real, nullptr);
  EXPECT_TRUE(real->connection().reused());
  EXPECT_EQ(real->connection()->backend_pid(), pid);
  auto r = (*s)->execute("job-b", "SELECT nope", 1000, nullptr, false, nullptr);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, pg::outcome::failed);
  EXPECT_EQ(r->error.message, "column \"nope\" does not exist");
}

TEST(PgSqlConnector, AConnectFailureSaysCannotConnectToTheDatabase) {
  ports::pg_sql_connector sql{std::make_shared<pg::pool>()};
  auto key = superuser_key();
  key.dbname = test::unique_name("nodb");
  auto s = sql.connect(key, "");
  ASSERT_FALSE(s);
  EXPECT_TRUE(is(s.error(), ec::pg_connect_failed));
  EXPECT_EQ(message_of(s.error()).rfind("cannot connect to the database: ", 0), 0u)
    << message_of(s.error());
}

/// A job of `user` that runs as a login role of its own (dropped at the end),
/// the role of the user's master key; the ports a canceller and a recovery use.
struct backend_ports : runner_ports {
  std::string role = test::unique_name("rprole");
  std::string job_id = test::unique_name("job");
  std::shared_ptr<pg::pool> pool = std::make_shared<pg::pool>();
  std::shared_ptr<ports::redis_job_environment> env =
    std::make_shared<ports::redis_job_environment>(test_endpoint(), default_cap);
  ports::pg_sql_connector sql{pool};
  ports::pg_backend_cancel fallback{test_endpoint(), env, pool, 5432};

  void SetUp() override {
    admin_exec("CREATE ROLE " + role + " LOGIN PASSWORD 'pw'");
    make_user(role);
    hset(redis::keys::job(job_id), {"user", user, "status", "running", "host", "127.0.0.1",
                                    "port", std::to_string(test::pg_port()), "dbname",
                                    "postgres", "dbuser", role});
  }

  ~backend_ports() override {
    pool->clear();
    try {
      admin_exec("DROP ROLE IF EXISTS " + role);
    } catch (...) {
    }
  }

  /// Runs the job's `SELECT pg_sleep(30)` on a thread of its own, as the job's
  /// role; the future says how it ended.
  std::future<std::string> sleep_as_job() {
    return std::async(std::launch::async, [this] {
      pg::pool_key key{"127.0.0.1", static_cast<uint16_t>(test::pg_port()), "postgres", role};
      auto s = sql.connect(key, "pw");
      if (!s)
        return std::string{"connect: "} + message_of(s.error());
      auto r = (*s)->execute(job_id, "SELECT pg_sleep(30)", 0, nullptr, false, nullptr);
      if (!r)
        return std::string{"execute: "} + message_of(r.error());
      return std::string{pg::to_string(r->what)} + ": " + r->error.sqlstate + " "
             + r->error.message;
    });
  }
};

TEST_F(backend_ports, TheBackendFallbackCancelsTheJobsStatementWithTheJobsRole) {
  auto running = sleep_as_job();
  // Not before the statement itself runs (the session first sends
  // `/* <id> */ SET statement_timeout ...`, tagged with the job id too).
  ASSERT_TRUE(wait_for_statement(job_id, "SELECT pg_sleep")) << "the job's statement never ran";
  auto n = fallback.cancel_backends_of_job(job_id, user);
  ASSERT_TRUE(n) << message_of(n.error());
  EXPECT_EQ(*n, 1);
  ASSERT_EQ(running.wait_for(20s), std::future_status::ready);
  EXPECT_EQ(running.get(), "failed: 57014 canceling statement due to user request");
  // Another user's job is not found.
  auto other = fallback.cancel_backends_of_job(job_id, user + "x");
  ASSERT_FALSE(other);
  EXPECT_TRUE(is(other.error(), ec::job_not_found));
}

TEST_F(backend_ports, StoppingAJobsBackendsReturnsOnlyOnceNoneOfThemIsActive) {
  auto running = sleep_as_job();
  ASSERT_TRUE(wait_for_statement(job_id, "SELECT pg_sleep")) << "the job's statement never ran";
  auto n = fallback.stop_backends_of_job(job_id, user, 10s);
  auto still_active = active_statements(job_id); // right after it returned
  ASSERT_TRUE(n) << message_of(n.error());
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(still_active, 0) << "a later job of the user may start now";
  ASSERT_EQ(running.wait_for(20s), std::future_status::ready);
  auto how = running.get();
  // Cancelled, or terminated if the cancel had not stopped it within 1 s.
  EXPECT_TRUE(how == "failed: 57014 canceling statement due to user request"
              || how.rfind("execute: ", 0) == 0)
    << how;

  // Nothing runs now.
  auto none = fallback.stop_backends_of_job(job_id, user, 1s);
  ASSERT_TRUE(none) << message_of(none.error());
  EXPECT_EQ(*none, 0);
  // Another user's job is not found.
  auto other = fallback.stop_backends_of_job(job_id, user + "x", 1s);
  ASSERT_FALSE(other);
  EXPECT_TRUE(is(other.error(), ec::job_not_found)) << message_of(other.error());
}

// A mock status actor for the real actor system: records the writes the
// runner sends (thread-safe), answers an empty turn_answer.
struct written {
  std::mutex mtx;
  std::vector<std::string> statuses;
  /// Writes that were not a progress write of turn part none under the claim.
  std::vector<std::string> unexpected;
};

status_actor::behavior_type recording_status(status_actor::pointer,
                                             std::shared_ptr<written> log,
                                             std::string claim) {
  return {
    [=](turn_atom, const turn_request& r) {
      std::lock_guard<std::mutex> guard{log->mtx};
      if (r.part != turn_part::none || r.write.size() != 1)
        log->unexpected.push_back("a turn part or no write");
      for (const auto& w : r.write) {
        log->statuses.push_back(w.to_status);
        if (w.kind != write_kind::progress || w.expected_claim != claim)
          log->unexpected.push_back("write to " + w.to_status);
      }
      return turn_answer{};
    },
    [](cancel_atom, const std::string&, const std::string&) { return pending_cancel{}; },
    [](cancel_mark_atom, const std::string&) { return false; },
  };
}

TEST_F(runner_ports, ADetachedRunnerStopsARunningPgSleepPromptlyWhenCancelled) {
  make_user("postgres"); // the master key's role; trust auth, so any password
  caf::actor_system_config cfg;
  register_types(cfg);
  caf::actor_system sys{cfg};
  auto log = std::make_shared<written>();
  auto status = sys.spawn(recording_status, log, std::string{"lease"});
  auto registry = std::make_shared<pg::cancel_registry>();
  auto env = std::make_shared<ports::redis_job_environment>(test_endpoint(), default_cap);
  auto sql = std::make_shared<ports::pg_sql_connector>(std::make_shared<pg::pool>());
  runner_settings rs;
  rs.node_id = "itest";
  auto runner = spawn_job_runner(sys, rs, status, env, sql, registry, true);

  auto req = job::parse_request(R"js({"query": "SELECT pg_sleep(30)"})js", "application/json", "");
  ASSERT_TRUE(req);
  auto job_id = test::unique_name("job");
  job::db_target db{"127.0.0.1", std::to_string(test::pg_port()), "postgres", "postgres",
                    std::nullopt};
  auto j = job::make_job(*req, job_id, user, db, std::chrono::system_clock::now());
  auto record = job::encode(j);
  for (auto& [k, v] : record)
    if (k == "status")
      v = "running";
  record.emplace_back("claim", "lease"); // as the claim of turn "lease" wrote it
  job_ticket ticket{job_id, user, "lease", record};

  // Fires only once the backend runs the pg_sleep itself: the session first
  // sends `/* <id> */ SET statement_timeout ...`, also tagged with the job id,
  // and a cancel then would keep the statement from being sent at all.
  std::atomic<bool> saw_statement{false};
  std::chrono::steady_clock::time_point fired_at;
  std::thread cancel_thread{[&] {
    saw_statement = wait_for_statement(job_id, "SELECT pg_sleep");
    fired_at = std::chrono::steady_clock::now();
    registry->cancel(job_id, stop_reason::user_cancel);
  }};
  caf::scoped_actor self{sys};
  job_outcome out;
  self->request(runner, caf::duration{60s}, run_atom::value, ticket)
    .receive([&](const job_outcome& o) { out = o; },
             [&](const caf::error& e) { ADD_FAILURE() << sys.render(e); });
  auto answered_at = std::chrono::steady_clock::now();
  cancel_thread.join();
  EXPECT_TRUE(saw_statement) << "the pg_sleep never ran";
  EXPECT_EQ(out.job_id, job_id);
  EXPECT_EQ(out.how, job_end::finished);
  EXPECT_EQ(out.status, "cancelled");
  EXPECT_EQ(out.written_status, "running");
  EXPECT_EQ(out.statements_run, 1);
  // pg_sleep(30) would take 30 s: a generous bound that still proves the stop.
  EXPECT_LT(answered_at - fired_at, 10s);
  {
    std::lock_guard<std::mutex> guard{log->mtx};
    EXPECT_EQ(log->statuses, std::vector<std::string>{"running"})
      << "the runner writes progress only; the final state is its answer";
    EXPECT_EQ(log->unexpected, std::vector<std::string>{});
  }
  EXPECT_FALSE(registry->armed(job_id));
  self->send_exit(status, caf::exit_reason::user_shutdown);
}

} // namespace
