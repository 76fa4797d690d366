// Integration tests for pool/pooled_connection on the real PostgreSQL:
// reuse, keying, connect failures, broken connections, passwords.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <set>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "messages/error.hpp"
#include "tests/pg/pg_fixture.hpp"
#include "tests/support/tcp_proxy.hpp"

using namespace batchq::pg;
using namespace batchq::pg::test;
using batchq::test::unique_name;

namespace {

// A loopback port nobody listens on (bound, read, closed).
uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

struct scoped_role {
  std::string name;
  explicit scoped_role(const std::string& prefix, const std::string& extra = "LOGIN")
    : name(unique_name(prefix)) {
    admin_exec("CREATE ROLE " + name + " " + extra);
  }
  ~scoped_role() {
    try {
      admin_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + name
                 + "'");
      wait_until([&] {
        return admin_value("SELECT count(*) FROM pg_stat_activity WHERE usename = '" + name + "'")
               == "0";
      });
      admin_exec("DROP ROLE IF EXISTS " + name);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cleanup of role " << name << ": " << e.what();
    }
  }
};

pooled_connection must(caf::expected<pooled_connection> c) {
  if (!c) {
    ADD_FAILURE() << batchq::message_of(c.error());
    std::abort();
  }
  return std::move(*c);
}

} // namespace

TEST(PgPool, AReleasedConnectionIsReusedWithTheSameBackend) {
  pool p;
  int pid;
  {
    auto c = must(p.acquire(superuser_key(), ""));
    EXPECT_FALSE(c.reused());
    pid = c->backend_pid();
    ASSERT_TRUE(c->execute("job-a", "SELECT 1", 0));
  }
  EXPECT_EQ(p.idle_count(superuser_key()), 1u);
  {
    auto c = must(p.acquire(superuser_key(), ""));
    EXPECT_TRUE(c.reused());
    EXPECT_EQ(c->backend_pid(), pid);
    EXPECT_EQ(p.idle_count(superuser_key()), 0u);
  }
  auto c = must(p.acquire(superuser_key(), ""));
  EXPECT_EQ(c->backend_pid(), pid);
}

TEST(PgPool, ConnectionsForDifferentRolesAreDifferentPoolEntries) {
  scoped_role r1{"bq_role"}, r2{"bq_role"};
  pool_key k1 = superuser_key(), k2 = superuser_key();
  k1.role = r1.name;
  k2.role = r2.name;
  {
    pool p;
    int pid1, pid2;
    {
      auto c1 = must(p.acquire(k1, ""));
      auto c2 = must(p.acquire(k2, ""));
      pid1 = c1->backend_pid();
      pid2 = c2->backend_pid();
      EXPECT_NE(pid1, pid2);
      EXPECT_EQ(admin_value("SELECT usename FROM pg_stat_activity WHERE pid = "
                            + std::to_string(pid1)),
                r1.name);
    }
    EXPECT_EQ(p.idle_count(k1), 1u);
    EXPECT_EQ(p.idle_count(k2), 1u);
    EXPECT_EQ(p.idle_count(superuser_key()), 0u);
    auto again = must(p.acquire(k2, ""));
    EXPECT_EQ(again->backend_pid(), pid2);
  }
}

TEST(PgPool, MaxIdlePerKeyIsRespected) {
  pool_config cfg;
  cfg.max_idle_per_key = 1;
  pool p{cfg};
  {
    auto a = must(p.acquire(superuser_key(), ""));
    auto b = must(p.acquire(superuser_key(), ""));
    EXPECT_NE(a->backend_pid(), b->backend_pid());
  }
  EXPECT_EQ(p.idle_count(superuser_key()), 1u);
  EXPECT_EQ(p.idle_count(), 1u);
  p.clear();
  EXPECT_EQ(p.idle_count(), 0u);
}

TEST(PgPool, ManyThreadsShareThePoolSafely) {
  pool_config cfg;
  cfg.max_idle_per_key = 3;
  pool p{cfg};
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      for (int j = 0; j < 10; ++j) {
        auto c = p.acquire(superuser_key(), "");
        if (!c)
          continue;
        auto r = (*c)->execute("job-t" + std::to_string(i), "SELECT 1", 1000 + j % 2);
        if (r && r->ok())
          ++ok;
      }
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(ok.load(), 80);
  EXPECT_LE(p.idle_count(superuser_key()), 3u);
}

TEST(PgPool, AMissingDatabaseFailsWithAClearMessage) {
  pool p;
  auto key = superuser_key();
  key.dbname = unique_name("bq_nodb");
  auto c = p.acquire(key, "");
  ASSERT_FALSE(c);
  EXPECT_TRUE(batchq::is(c.error(), batchq::ec::pg_connect_failed));
  EXPECT_EQ(batchq::message_of(c.error()),
            "cannot connect to the database: database \"" + key.dbname + "\" does not exist");
}

TEST(PgPool, AClosedPortFailsFast) {
  pool p;
  auto key = superuser_key();
  key.port = closed_port();
  auto t0 = std::chrono::steady_clock::now();
  auto c = p.acquire(key, "");
  auto ms = ms_since(t0);
  ASSERT_FALSE(c);
  EXPECT_TRUE(batchq::is(c.error(), batchq::ec::pg_connect_failed));
  EXPECT_EQ(batchq::message_of(c.error()), "cannot connect to the database: Connection refused");
  EXPECT_LT(ms, 1000);
}

TEST(PgPool, ATerminatedIdleConnectionIsReplacedByAFreshOne) {
  pool p;
  int pid;
  {
    auto c = must(p.acquire(superuser_key(), ""));
    pid = c->backend_pid();
  }
  ASSERT_EQ(p.idle_count(superuser_key()), 1u);
  admin_exec("SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
  ASSERT_TRUE(wait_until([&] { return !backend_exists(pid); }));
  auto c = must(p.acquire(superuser_key(), ""));
  EXPECT_FALSE(c.reused());
  EXPECT_NE(c->backend_pid(), pid);
  auto r = c->execute("job-fresh", "SELECT 1", 0);
  ASSERT_TRUE(r) << batchq::message_of(r.error());
  EXPECT_EQ(r->what, outcome::succeeded);
}

// The race of the test above made certain: the server's termination
// notice is read with the session reset's answers, and its EOF is held back
// (the proxy keeps the client side open), so the socket is quiet on the next
// acquire while the connection is dead.
TEST(PgPool, ATerminationNoticeReadWithTheResetsAnswersIsNeverReused) {
  batchq::test::tcp_proxy proxy{static_cast<uint16_t>(batchq::test::pg_port())};
  proxy.hold_clients_when_the_server_closes();
  pool p;
  pool_key key{"127.0.0.1", proxy.port(), "postgres", "postgres"};
  int pid;
  {
    auto c = must(p.acquire(key, ""));
    pid = c->backend_pid();
  } // given back: its session reset is sent, its answers not yet read
  ASSERT_EQ(p.idle_count(key), 1u);
  admin_exec("SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
  ASSERT_TRUE(wait_until([&] { return proxy.held_server_closes() == 1; }));
  auto c = must(p.acquire(key, ""));
  EXPECT_FALSE(c.reused());
  EXPECT_NE(c->backend_pid(), pid);
  auto r = c->execute("job-fresh", "SELECT 1", 0);
  ASSERT_TRUE(r) << batchq::message_of(r.error());
  EXPECT_EQ(r->what, outcome::succeeded);
}

TEST(PgPool, ABackendKilledMidStatementLosesTheConnectionWhichIsNeverReused) {
  pool p;
  int pid;
  {
    auto c = must(p.acquire(superuser_key(), ""));
    pid = c->backend_pid();
    auto fut = std::async(std::launch::async,
                          [&] { return c->execute("job-killed", "SELECT pg_sleep(10)", 0); });
    ASSERT_TRUE(wait_until([&] { return backend_state(pid) == "active"; }));
    admin_exec("SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
    auto r = fut.get();
    ASSERT_FALSE(r);
    EXPECT_TRUE(batchq::is(r.error(), batchq::ec::pg_connection_lost));
    EXPECT_EQ(batchq::message_of(r.error()),
              "connection to the database was lost: terminating connection due to "
              "administrator command");
    EXPECT_TRUE(c->broken());
    auto again = c->execute("job-killed", "SELECT 1", 0);
    ASSERT_FALSE(again);
    EXPECT_TRUE(batchq::is(again.error(), batchq::ec::pg_connection_lost));
  }
  EXPECT_EQ(p.idle_count(superuser_key()), 0u);
  auto c = must(p.acquire(superuser_key(), ""));
  EXPECT_NE(c->backend_pid(), pid);
  auto r = c->execute("job-after", "SELECT 1", 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->what, outcome::succeeded);
}

TEST(PgPool, AHandleOutlivingItsPoolClosesItsConnection) {
  std::optional<pooled_connection> c;
  int pid;
  {
    pool p;
    c.emplace(must(p.acquire(superuser_key(), "")));
    pid = (*c)->backend_pid();
  }
  ASSERT_TRUE((*c)->execute("job-orphan", "SELECT 1", 0));
  c.reset();
  EXPECT_TRUE(wait_until([&] { return !backend_exists(pid); }));
}

// --- password authentication: a private, tiny cluster with scram auth ---------

namespace {

// initdb + pg_ctl start of a throw-away cluster whose TCP connections require
// a password (scram-sha-256) and whose Unix socket trusts (for setup).
class auth_cluster {
public:
  auth_cluster() {
    const char* pgbin = "/usr/lib/postgresql/15/bin";
    char tmpl[] = "/tmp/bq-pg-auth.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr)
      return;
    dir_ = tmpl;
    port_ = closed_port();
    std::string as_owner = ::geteuid() == 0 ? "runuser -u postgres -- " : "";
    std::string chown = ::geteuid() == 0 ? "chown postgres:postgres " + dir_ + " && " : "";
    std::string cmd = "chmod 755 " + dir_ + " && " + chown + as_owner + pgbin
                      + "/initdb -D " + dir_ + "/data -U postgres -E UTF8 --no-sync "
                      + "--auth-local=trust --auth-host=scram-sha-256 >" + dir_
                      + "/initdb.log 2>&1 && " + as_owner + pgbin + "/pg_ctl -D " + dir_
                      + "/data -l " + dir_ + "/log -w -o \"-p " + std::to_string(port_) + " -k "
                      + dir_ + " -c listen_addresses=127.0.0.1 -c fsync=off\" start >/dev/null";
    started_ = std::system(cmd.c_str()) == 0;
  }
  ~auth_cluster() {
    if (dir_.empty())
      return;
    std::string as_owner = ::geteuid() == 0 ? "runuser -u postgres -- " : "";
    std::string cmd = as_owner + "/usr/lib/postgresql/15/bin/pg_ctl -D " + dir_
                      + "/data -m immediate stop >/dev/null 2>&1; rm -rf " + dir_;
    [[maybe_unused]] int rc = std::system(cmd.c_str());
  }
  bool started() const { return started_; }
  uint16_t port() const { return port_; }
  // Trusted setup connection over the Unix socket.
  std::string admin_conninfo() const {
    return "host=" + dir_ + " port=" + std::to_string(port_) + " user=postgres dbname=postgres";
  }

private:
  std::string dir_;
  uint16_t port_ = 0;
  bool started_ = false;
};

} // namespace

TEST(PgPoolAuth, APasswordWithSpacesQuotesAndBackslashesWorksAndAWrongOneFails) {
  auth_cluster cluster;
  ASSERT_TRUE(cluster.started()) << "could not start a private PostgreSQL cluster";
  const std::string password = "s3cret 'quoted' \"double\" back\\slash = end";
  {
    pqxx::connection admin{cluster.admin_conninfo()};
    pqxx::nontransaction tx{admin};
    tx.exec("CREATE ROLE job_role LOGIN PASSWORD " + tx.quote(password));
  }
  pool_key key{"127.0.0.1", cluster.port(), "postgres", "job_role"};
  pool p;
  {
    auto c = p.acquire(key, password);
    ASSERT_TRUE(c) << batchq::message_of(c.error());
    auto r = (*c)->execute("job-pw", "SELECT current_user", 0);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->what, outcome::succeeded);
  }
  pool fresh;
  auto bad = fresh.acquire(key, password + "x");
  ASSERT_FALSE(bad);
  EXPECT_TRUE(batchq::is(bad.error(), batchq::ec::pg_connect_failed));
  auto msg = batchq::message_of(bad.error());
  EXPECT_EQ(msg,
            "cannot connect to the database: password authentication failed for user \"job_role\"");
  EXPECT_EQ(msg.find(password), std::string::npos);
  auto none = fresh.acquire(key, "");
  ASSERT_FALSE(none);
  EXPECT_TRUE(batchq::is(none.error(), batchq::ec::pg_connect_failed));
  std::cout << "[ measure  ] no password: " << batchq::message_of(none.error()) << "\n";
}
