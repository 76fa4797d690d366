// The scheduling core of a real `batchq serve --worker-only` process under
// faults (issue "The scheduling core under load and faults"): a drain with
// grace 0, a drain that cannot write back, Redis restarted with and without
// its data while jobs run, a herd of 10,000 users woken at once. The Redis
// restarts use a private redis-server (tests/support/redis_server.hpp) so the
// shared one is never touched; PostgreSQL is the test cluster. Every wait is
// bounded and polls a condition.
#include <chrono>
#include <iostream>
#include <set>

#include <gtest/gtest.h>

#include "src/job/record.hpp"
#include "tests/serve/harness.hpp"
#include "tests/support/redis_server.hpp"

using namespace batchq;
using namespace batchq::test;
using namespace batchq::test::serve;
using namespace std::chrono_literals;

namespace {

std::string ms_since(clock::time_point t0) {
  return std::to_string(
    std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0).count());
}

/// Accounts and CARTO-layout jobs on a private Redis (batch DB 5, as by default).
class private_store {
public:
  explicit private_store(uint16_t port)
    : port_(port), c_(redis::endpoint{"127.0.0.1", port, 5}) {}

  redis::client& client() { return c_; }

  /// The commands creating user `user` (master key role postgres, empty password).
  std::vector<std::vector<std::string>> user_commands(const std::string& user) {
    auto token = "k-" + user;
    return {{"HSET", redis::keys::rails_user(user), "id", "1", "database_host", "127.0.0.1",
             "database_name", "postgres", "database_port", std::to_string(pg_port()), "map_key",
             token},
            {"HSET", redis::keys::api_key(user, token), "user", user, "type", "master",
             "grants_sql", "true", "database_role", "postgres", "database_password", ""}};
  }

  /// The commands of CARTO's enqueue of one job (no PUBLISH).
  std::vector<std::vector<std::string>> job_commands(const std::string& user,
                                                     const std::string& id,
                                                     const std::string& query) {
    auto now = redis::iso8601_now();
    return {{"HSET", redis::keys::job(id), "user", user, "status", "pending", "query", query,
             "created_at", now, "updated_at", now, "host", "127.0.0.1", "port",
             std::to_string(pg_port()), "dbname", "postgres", "dbuser", "postgres"},
            {"LPUSH", redis::keys::queue(user), id},
            {"SADD", std::string{redis::keys::queue_index}, user}};
  }

  void run(const std::vector<std::vector<std::string>>& cmds) {
    for (size_t i = 0; i < cmds.size(); i += 5000) {
      std::vector<std::vector<std::string>> part(
        cmds.begin() + static_cast<long>(i),
        cmds.begin() + static_cast<long>(std::min(cmds.size(), i + 5000)));
      // After a restart of Redis the connection reconnects with backoff.
      caf::expected<std::vector<redis::reply>> r{caf::error{}};
      wait_until([&] { return static_cast<bool>(r = c_.pipeline(part)); }, 10s);
      ASSERT_TRUE(r) << message_of(r.error());
    }
  }

  void add_user(const std::string& user) { run(user_commands(user)); }

  /// Enqueues one job and publishes its user.
  std::string enqueue(const std::string& user, const std::string& query) {
    auto id = redis::random_token();
    auto cmds = job_commands(user, id, query);
    cmds.push_back({"PUBLISH", std::string{redis::keys::users_channel}, user});
    run(cmds);
    return id;
  }

  std::string status(const std::string& id) {
    auto r = c_.command({"HGET", redis::keys::job(id), "status"});
    return r && r->is_string() ? r->str : std::string{};
  }

  std::string field(const std::string& id, const std::string& name) {
    auto r = c_.command({"HGET", redis::keys::job(id), name});
    return r && r->is_string() ? r->str : std::string{};
  }

  bool wait_final(const std::string& id, std::chrono::milliseconds timeout) {
    return wait_until(
      [&] {
        auto s = status(id);
        return s == "done" || s == "failed" || s == "cancelled";
      },
      timeout);
  }

private:
  uint16_t port_;
  redis::client c_;
};

/// `batchq serve --worker-only` on the private Redis `port`.
std::unique_ptr<serve_node> node_on(uint16_t port, std::vector<std::string> extra = {}) {
  std::vector<std::string> flags{"--redis.port=" + std::to_string(port), "--redis.db=5"};
  flags.insert(flags.end(), extra.begin(), extra.end());
  auto n = std::make_unique<serve_node>(flags);
  redis::client c{redis::endpoint{"127.0.0.1", port, 5}};
  EXPECT_TRUE(n->wait_ready(c)) << "node " << n->id() << " did not register";
  return n;
}

/// Whether the statements of `a` and `b` are both running right now.
bool both_active(sql& db, const std::string& a, const std::string& b) {
  return db.statement_active(a, "select pg_sleep") && db.statement_active(b, "select pg_sleep");
}

struct faults_test : ::testing::Test {
  sql db;
};

// -- drain ------------------------------------------------------------------------

TEST_F(faults_test, WithGraceZeroSigtermRequeuesTheRunningJobAtTheHeadAndTheNextNodeRunsItFirst) {
  redis_server redis;
  private_store ps{redis.port()};
  ps.add_user("grace0");
  auto t = db.log_table();
  auto node = node_on(redis.port(), {"--batch.shutdown-grace=0"});
  auto first = ps.enqueue("grace0", "select pg_sleep(3); insert into " + t
                                      + " values ('first', clock_timestamp(), null)");
  ASSERT_TRUE(wait_until([&] { return db.statement_active(first, "select pg_sleep"); }, 10s));
  auto later = ps.enqueue("grace0", "insert into " + t + " values ('later', clock_timestamp(), null)");
  auto t0 = clock::now();
  auto code = node->stop(20s);
  std::cout << "[ measured ] drain with shutdown-grace=0 took " << ms_since(t0) << " ms\n";
  ASSERT_TRUE(code.has_value()) << "the node did not exit";
  EXPECT_EQ(*code, 0) << node->log();
  EXPECT_EQ(ps.status(first), "pending");
  EXPECT_EQ(ps.status(later), "pending");
  auto q = ps.client().command({"LRANGE", redis::keys::queue("grace0"), "0", "-1"});
  ASSERT_TRUE(q);
  ASSERT_EQ(q->elements.size(), 2u);
  EXPECT_EQ(q->elements.back().str, first) << "the drained job runs next (RPOP end)";
  auto wip = ps.client().command({"LLEN", redis::keys::wip_user("grace0")});
  EXPECT_EQ(wip->integer, 0) << "the drained job left work in progress";
  auto lock = ps.client().command({"EXISTS", redis::keys::lock_user("grace0")});
  EXPECT_EQ(lock->integer, 0) << "the lease was released";
  EXPECT_FALSE(db.statement_active(first)) << "the drained statement was stopped";
  auto second = node_on(redis.port());
  ASSERT_TRUE(ps.wait_final(first, 20s));
  ASSERT_TRUE(ps.wait_final(later, 10s));
  EXPECT_EQ(ps.status(first), "done") << ps.field(first, "failed_reason");
  EXPECT_EQ(ps.status(later), "done");
  auto rows = db.exec("select job from " + t + " order by started");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0].as<std::string>(), "first");
  EXPECT_EQ(rows[1][0].as<std::string>(), "later");
}

TEST_F(faults_test, ADrainThatCannotWriteTheJobBackSaysSoAndExitsNonZero) {
  redis_server redis;
  private_store ps{redis.port()};
  ps.add_user("nowrite");
  auto node = node_on(redis.port(), {"--batch.shutdown-grace=0", "--batch.lease-ttl=1000"});
  auto id = ps.enqueue("nowrite", "select pg_sleep(20)");
  ASSERT_TRUE(wait_until([&] { return db.statement_active(id, "select pg_sleep"); }, 10s));
  redis.kill(); // gone for good
  auto code = node->stop(60s);
  ASSERT_TRUE(code.has_value()) << "the node did not exit";
  EXPECT_NE(*code, 0);
  EXPECT_NE(node->log().find("drain failed"), std::string::npos) << tail(node->log(), 30);
  EXPECT_FALSE(db.statement_active(id)) << "its statement was stopped all the same";
}

// -- Redis restarts ---------------------------------------------------------------

TEST_F(faults_test, TwoUsersRunInParallelRightAfterRedisRestartsWithoutItsData) {
  redis_server redis; // no AOF: a restart comes back empty
  private_store ps{redis.port()};
  auto node = node_on(redis.port(), {"--batch.lease-ttl=1000", "--batch.rescan-interval=1"});
  ps.add_user("par-a");
  ps.add_user("par-b");
  auto a1 = ps.enqueue("par-a", "select pg_sleep(3)");
  auto b1 = ps.enqueue("par-b", "select pg_sleep(3)");
  ASSERT_TRUE(wait_until([&] { return both_active(db, a1, b1); }, 10s))
    << "the two users' jobs never ran at the same time";
  // Redis goes away and comes back empty while both run; the accounts are
  // loaded again and each user gets a new job.
  ASSERT_TRUE(redis.restart());
  ps.add_user("par-a");
  ps.add_user("par-b");
  auto a2 = ps.enqueue("par-a", "select pg_sleep(2)");
  auto b2 = ps.enqueue("par-b", "select pg_sleep(2)");
  EXPECT_TRUE(wait_until([&] { return both_active(db, a2, b2); }, 20s))
    << "after the restart the two users' jobs never ran at the same time";
  EXPECT_TRUE(ps.wait_final(a2, 20s));
  EXPECT_TRUE(ps.wait_final(b2, 20s));
  EXPECT_EQ(ps.status(a2), "done") << ps.field(a2, "failed_reason");
  EXPECT_EQ(ps.status(b2), "done") << ps.field(b2, "failed_reason");
  // Nothing is left held once both are done.
  EXPECT_TRUE(wait_until(
    [&] {
      auto r = ps.client().command({"KEYS", "batch:locks:user:*"});
      return r && r->elements.empty();
    },
    10s));
}

TEST_F(faults_test, AJobRunningWhileRedisIsKilledAndRestartedFromItsAofEndsDoneAndRunsOnce) {
  redis_server redis{true};
  private_store ps{redis.port()};
  ps.add_user("aof");
  auto t = db.log_table();
  auto node = node_on(redis.port());
  auto id = ps.enqueue("aof", "select pg_sleep(2); insert into " + t
                                + " values ('once', clock_timestamp(), null)");
  auto next = ps.enqueue("aof", "insert into " + t + " values ('next', clock_timestamp(), null)");
  ASSERT_TRUE(wait_until([&] { return db.statement_active(id, "select pg_sleep"); }, 10s));
  ASSERT_TRUE(redis.restart());
  ASSERT_TRUE(ps.wait_final(id, 20s));
  ASSERT_TRUE(ps.wait_final(next, 20s));
  EXPECT_EQ(ps.status(id), "done") << ps.field(id, "failed_reason");
  EXPECT_EQ(ps.status(next), "done") << ps.field(next, "failed_reason");
  auto rows = db.exec("select job from " + t + " order by started");
  ASSERT_EQ(rows.size(), 2u) << "a statement ran twice or not at all";
  EXPECT_EQ(rows[0][0].as<std::string>(), "once");
  EXPECT_EQ(rows[1][0].as<std::string>(), "next");
}

TEST_F(faults_test, AStatusWriteLostToAKilledRedisConnectionIsRetriedAndTheJobEndsDone) {
  redis_server redis{true};
  private_store ps{redis.port()};
  ps.add_user("ckill");
  auto t = db.log_table();
  auto node = node_on(redis.port());
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(ps.enqueue("ckill", "select pg_sleep(0.3); insert into " + t + " values ('"
                                        + std::to_string(i) + "', clock_timestamp(), null)"));
  // Drop every client connection while the jobs run, several times.
  for (int k = 0; k < 6; ++k) {
    wait_until([&] { return db.statement_active(ids[static_cast<size_t>(k % 5)], "select pg_sleep"); }, 2s, 5ms);
    redis::client admin{redis::endpoint{"127.0.0.1", redis.port(), 0}};
    admin.command({"CLIENT", "KILL", "TYPE", "normal"});
  }
  for (auto& id : ids) {
    ASSERT_TRUE(ps.wait_final(id, 30s));
    EXPECT_EQ(ps.status(id), "done") << ps.field(id, "failed_reason");
  }
  auto rows = db.exec("select job from " + t + " order by started");
  ASSERT_EQ(rows.size(), 5u) << "a statement ran twice or not at all";
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(rows[static_cast<pqxx::result::size_type>(i)][0].as<std::string>(),
              std::to_string(i));
}

// -- the herd ---------------------------------------------------------------------

TEST_F(faults_test, TenThousandUsersWokenAtOnceAllEndDoneOnOneNodeThatThenExitsCleanly) {
  constexpr int users = 10000;
  redis_server redis;
  private_store ps{redis.port()};
  std::vector<std::vector<std::string>> cmds;
  std::vector<std::string> ids;
  for (int i = 0; i < users; ++i) {
    auto user = "herd" + std::to_string(i);
    for (auto& c : ps.user_commands(user))
      cmds.push_back(std::move(c));
    auto id = "herd-job-" + std::to_string(i);
    ids.push_back(id);
    for (auto& c : ps.job_commands(user, id, "select 1"))
      cmds.push_back(std::move(c));
  }
  ps.run(cmds);
  auto node = node_on(redis.port(), {"--batch.rescan-interval=3600", "--log.level=warning"});
  std::vector<std::vector<std::string>> wake;
  for (int i = 0; i < users; ++i)
    wake.push_back({"PUBLISH", std::string{redis::keys::users_channel}, "herd" + std::to_string(i)});
  auto t0 = clock::now();
  ps.run(wake);
  auto count = [&](const char* status) {
    auto r = ps.client().command(
      {"EVAL",
       "local n = 0 for i = 0, tonumber(ARGV[1]) - 1 do if redis.call('HGET', 'batch:jobs:herd-job-' "
       ".. i, 'status') == ARGV[2] then n = n + 1 end end return n",
       "0", std::to_string(users), status});
    return r ? r->integer : -1;
  };
  bool all_done = wait_until([&] { return count("done") + count("failed") == users; }, 240s, 500ms);
  std::cout << "[ measured ] 10,000 users x 1 job woken at once, one node: all final after "
            << ms_since(t0) << " ms\n";
  EXPECT_TRUE(all_done) << count("done") << " done, " << count("pending") << " pending, "
                        << count("running") << " running";
  EXPECT_EQ(count("failed"), 0);
  auto wip = ps.client().command({"SCARD", std::string{redis::keys::wip_users}});
  EXPECT_EQ(wip->integer, 0);
  auto t1 = clock::now();
  auto code = node->stop(30s);
  std::cout << "[ measured ] SIGTERM after the herd: exit in " << ms_since(t1) << " ms\n";
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << tail(node->log(), 30);
}

} // namespace
