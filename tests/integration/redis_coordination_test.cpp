// The scheduler's and the subscriber's real ports against a real Redis (DB 12,
// the subscriber DB 14; a unique user per test): ports::redis_coordination (leases, idle release,
// capacity slots, database host) and ports::redis_queue_index, and a real
// subscriber actor with its SUBSCRIBE thread receiving a PUBLISH. Waits are
// bounded (a deadline), never a fixed sleep standing in for a condition.
#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include <cstdlib>

#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/subscriber.hpp"
#include "messages/type_ids.hpp"
#include "src/ports/redis_coordination.hpp"
#include "src/ports/redis_queue_index.hpp"
#include "src/redis/client.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"
#include "src/redis/subscription.hpp"
#include "tests/support/test_env.hpp"

using namespace batchq;
using namespace std::chrono_literals;

namespace {

constexpr int test_db = 12;
constexpr int other_db = 13;
/// The subscriber's start-up rebuild SADDs every user with a queue in its
/// database to the index; a database of its own keeps that from touching the
/// indexes other tests (DB 12) assert on.
constexpr int subscriber_db = 14;

redis::endpoint endpoint(int db = test_db) {
  return redis::endpoint{"127.0.0.1", static_cast<uint16_t>(test::redis_port()), db};
}

struct RedisCoordination : ::testing::Test {
  redis::client rc{endpoint()};
  redis::client rc_other{endpoint(other_db)};
  ports::redis_coordination port{endpoint(), test_db};
  std::string user = test::unique_name("coord");
  std::string host = test::unique_name("dbhost");

  ~RedisCoordination() override {
    rc.command({"DEL", redis::keys::lock_user(user), redis::keys::queue(user),
                redis::keys::capacity(host), redis::keys::rails_user(user)});
    rc.command({"SREM", std::string{redis::keys::queue_index}, user});
    rc_other.command({"DEL", redis::keys::rails_user(user)});
  }

  std::optional<std::string> holder() {
    auto h = redis::lease_holder(rc, user);
    EXPECT_TRUE(h);
    return h ? *h : std::nullopt;
  }
};

TEST_F(RedisCoordination, AnnouncePublishesTheUserOnTheUsersChannel) {
  auto sub = redis::subscription::open(endpoint(), {std::string{redis::keys::users_channel}});
  ASSERT_TRUE(sub) << message_of(sub.error());
  ASSERT_TRUE(port.announce(user));
  // Other tests publish on the same channel: wait for our user, bounded.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  bool seen = false;
  while (!seen && std::chrono::steady_clock::now() < deadline) {
    auto m = (*sub)->next(500ms);
    ASSERT_TRUE(m) << message_of(m.error());
    seen = *m && (*m)->payload == user;
  }
  EXPECT_TRUE(seen);
}

TEST_F(RedisCoordination, AHeldLeaseCannotBeTakenByAnotherTokenUntilReleased) {
  auto a = port.acquire_lease(user, "token-a", 5s);
  ASSERT_TRUE(a);
  EXPECT_TRUE(*a);
  auto b = port.acquire_lease(user, "token-b", 5s);
  ASSERT_TRUE(b);
  EXPECT_FALSE(*b);
  EXPECT_EQ(holder(), "token-a");
  ASSERT_TRUE(port.release_lease(user, "token-b")); // not the holder: no change
  EXPECT_EQ(holder(), "token-a");
  ASSERT_TRUE(port.release_lease(user, "token-a"));
  EXPECT_EQ(holder(), std::nullopt);
  b = port.acquire_lease(user, "token-b", 5s);
  ASSERT_TRUE(b);
  EXPECT_TRUE(*b);
}

TEST_F(RedisCoordination, RenewalSucceedsForTheHolderAndFailsOnceTheLeaseIsGone) {
  ASSERT_TRUE(port.acquire_lease(user, "token-a", 5s));
  auto r = port.renew_lease(user, "token-a", 60s);
  ASSERT_TRUE(r);
  EXPECT_TRUE(*r);
  auto ttl = rc.command({"PTTL", redis::keys::lock_user(user)});
  ASSERT_TRUE(ttl);
  EXPECT_GT(ttl->integer, 5000);
  r = port.renew_lease(user, "token-b", 60s);
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
  rc.command({"DEL", redis::keys::lock_user(user)}); // as if it expired
  r = port.renew_lease(user, "token-a", 60s);
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
}

TEST_F(RedisCoordination, ReleaseIfIdleKeepsTheLeaseWhileJobsAreQueued) {
  ASSERT_TRUE(port.acquire_lease(user, "token-a", 5s));
  rc.command({"LPUSH", redis::keys::queue(user), "job-1"});
  auto r = port.release_lease_if_idle(user, "token-a");
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_FALSE(*r);
  EXPECT_EQ(holder(), "token-a");
  rc.command({"DEL", redis::keys::queue(user)});
  r = port.release_lease_if_idle(user, "token-a");
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_TRUE(*r);
  EXPECT_EQ(holder(), std::nullopt);
}

TEST_F(RedisCoordination, ReleaseIfIdleByANonHolderFailsWithLeaseLost) {
  ASSERT_TRUE(port.acquire_lease(user, "token-a", 5s));
  auto r = port.release_lease_if_idle(user, "token-b");
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), ec::lease_lost)) << message_of(r.error());
  EXPECT_EQ(holder(), "token-a");
}

TEST_F(RedisCoordination, CapacitySlotsOfAHostAreLimitedAndGivenBack) {
  auto a = port.acquire_slot(host, 2, "slot-a", 5s);
  auto b = port.acquire_slot(host, 2, "slot-b", 5s);
  auto c = port.acquire_slot(host, 2, "slot-c", 5s);
  ASSERT_TRUE(a && b && c);
  EXPECT_TRUE(*a);
  EXPECT_TRUE(*b);
  EXPECT_FALSE(*c);
  ASSERT_TRUE(port.release_slot(host, "slot-a"));
  auto renewed = port.renew_slot(host, "slot-a", 5s);
  ASSERT_TRUE(renewed);
  EXPECT_FALSE(*renewed);
  renewed = port.renew_slot(host, "slot-b", 5s);
  ASSERT_TRUE(renewed);
  EXPECT_TRUE(*renewed);
  c = port.acquire_slot(host, 2, "slot-c", 5s);
  ASSERT_TRUE(c);
  EXPECT_TRUE(*c);
}

TEST_F(RedisCoordination, DatabaseHostIsReadFromRailsUsersOnTheMetadataDatabase) {
  auto none = port.database_host(user);
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, "");
  rc.command({"HSET", redis::keys::rails_user(user), "database_host", "10.0.0.7"});
  auto h = port.database_host(user);
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, "10.0.0.7");
  // Leases in DB 12, metadata in DB 13.
  ports::redis_coordination split{endpoint(), other_db};
  rc_other.command({"HSET", redis::keys::rails_user(user), "database_host", "10.0.0.8"});
  h = split.database_host(user);
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, "10.0.0.8");
  auto got = split.acquire_lease(user, "token-a", 5s);
  ASSERT_TRUE(got);
  EXPECT_EQ(holder(), "token-a");
}

TEST_F(RedisCoordination, ACoordinationCallCostsOneRoundTrip) {
  ASSERT_TRUE(port.acquire_lease(user, "token-a", 5s)); // connects, loads scripts
  auto before = port.round_trips();
  ASSERT_TRUE(port.renew_lease(user, "token-a", 5s));
  ASSERT_TRUE(port.acquire_slot(host, 4, "slot-a", 5s));
  ASSERT_TRUE(port.release_slot(host, "slot-a"));
  ASSERT_TRUE(port.database_host(user));
  ASSERT_TRUE(port.release_lease_if_idle(user, "token-a"));
  EXPECT_EQ(port.round_trips() - before, 5u);
}

// -- the crash sweep: orphaned work in progress (SPEC §7) -----------------------

/// Two users with one job each in work in progress, as job_dequeue leaves them;
/// their keys go at the end of the test.
struct OrphanedUsers : RedisCoordination {
  std::string orphan = test::unique_name("orphan");
  std::string held = test::unique_name("held");

  OrphanedUsers() {
    for (const auto& u : {orphan, held}) {
      EXPECT_TRUE(rc.command({"LPUSH", redis::keys::wip_user(u), "job-of-" + u}));
      EXPECT_TRUE(rc.command({"SADD", std::string{redis::keys::wip_users}, u}));
    }
  }

  ~OrphanedUsers() override {
    for (const auto& u : {orphan, held}) {
      rc.command({"DEL", redis::keys::wip_user(u), redis::keys::lock_user(u)});
      rc.command({"SREM", std::string{redis::keys::wip_users}, u});
    }
  }

  /// Whether the port's answer names `u` (other tests' users may be in it too).
  bool reported(const std::string& u) {
    auto r = port.orphaned_users();
    EXPECT_TRUE(r) << message_of(r.error());
    return r && std::find(r->begin(), r->end(), u) != r->end();
  }
};

TEST_F(OrphanedUsers, AUserWithWorkInProgressAndNoLeaseIsOrphanedAndOneWithALeaseIsNot) {
  ASSERT_TRUE(port.acquire_lease(held, "token-held", 5s));
  EXPECT_TRUE(reported(orphan));
  EXPECT_FALSE(reported(held));
  // The sweeper takes the orphan's lease: it is no longer orphaned.
  ASSERT_TRUE(port.acquire_lease(orphan, "token-sweeper", 5s));
  EXPECT_FALSE(reported(orphan));
  // The holder of `held` dies: its lease expires and it becomes orphaned.
  ASSERT_TRUE(rc.command({"PEXPIRE", redis::keys::lock_user(held), "1"}));
  auto deadline = std::chrono::steady_clock::now() + 2s;
  bool became_orphan = false;
  while (!became_orphan && std::chrono::steady_clock::now() < deadline) {
    became_orphan = reported(held);
    if (!became_orphan)
      std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(became_orphan);
}

TEST_F(OrphanedUsers, AUserInTheWipSetWithAnEmptyWipListIsNotOrphaned) {
  ASSERT_TRUE(rc.command({"DEL", redis::keys::wip_user(orphan)}));
  EXPECT_FALSE(reported(orphan));
  EXPECT_TRUE(reported(held));
}

TEST_F(OrphanedUsers, TheSweepQueryCostsOneRoundTrip) {
  ASSERT_TRUE(port.orphaned_users()); // connects, loads scripts
  auto before = port.round_trips();
  ASSERT_TRUE(port.orphaned_users());
  EXPECT_EQ(port.round_trips() - before, 1u);
}

// -- the subscriber with its real SUBSCRIBE thread -------------------------------

/// Stands in for the scheduler: forwards every `wants` to the test's scoped actor.
scheduler_actor::behavior_type collector(scheduler_actor::pointer, caf::actor sink) {
  return {
    [=](wants_atom, const std::string& user) { caf::anon_send(sink, wants_atom::value, user); },
    [=](done_atom, const std::string&, const job_summary&) {},
    [=](idle_atom, const std::string&) {},
    [=](tick_atom) {},
    [=](drain_atom) { return drain_report{}; },
    [=](stats_atom) { return scheduler_stats{}; },
  };
}

struct actor_config : caf::actor_system_config {
  actor_config() {
    register_types(*this);
    set("scheduler.max-threads", 2);
  }
};

struct RedisSubscriber : ::testing::Test {
  redis::client rc{endpoint(subscriber_db)};
  std::string user = test::unique_name("sub");
  actor_config cfg;
  caf::actor_system sys{cfg};
  std::optional<caf::scoped_actor> self{std::in_place, sys};
  scheduler_actor scheduler = sys.spawn(collector, caf::actor{*self});
  subscriber_actor sub;

  ~RedisSubscriber() override {
    caf::anon_send_exit(sub, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
    self.reset();
    rc.command({"DEL", redis::keys::queue(user)});
    rc.command({"SREM", std::string{redis::keys::queue_index}, user});
  }

  void start(redis::endpoint ep) {
    subscriber_settings s;
    s.endpoint = ep;
    s.rescan_interval = 60s;
    s.backoff = {20ms, 200ms};
    sub = spawn_subscriber(sys, s, scheduler, std::make_shared<ports::redis_queue_index>(ep));
  }

  bool ready() {
    bool out = false;
    (*self)->request(sub, 1s, ready_atom::value).receive([&](bool r) { out = r; },
                                                         [&](caf::error&) {});
    return out;
  }

  /// Polls `ready` until true or `limit` passed.
  bool wait_ready(std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (ready())
        return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  /// Receives `wants` until one names `who` (other tests' users may pass by)
  /// or `limit` passed.
  bool wait_wants(const std::string& who, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left <= 0ms)
        return false;
      bool found = false, timeout = false;
      (*self)->receive([&](wants_atom, const std::string& u) { found = u == who; },
                       caf::after(left) >> [&] { timeout = true; });
      if (found)
        return true;
      if (timeout)
        return false;
    }
  }
};

TEST_F(RedisSubscriber, APublishedUserReachesTheScheduler) {
  start(endpoint(subscriber_db));
  ASSERT_TRUE(wait_ready(5s));
  auto n = rc.command({"PUBLISH", std::string{redis::keys::users_channel}, user});
  ASSERT_TRUE(n);
  EXPECT_GE(n->integer, 1);
  EXPECT_TRUE(wait_wants(user, 5s));
}

TEST_F(RedisSubscriber, AtStartAQueueMissingFromTheIndexIsIndexedAndReported) {
  rc.command({"LPUSH", redis::keys::queue(user), "job-1"});
  start(endpoint(subscriber_db));
  EXPECT_TRUE(wait_wants(user, 5s));
  auto member = rc.command({"SISMEMBER", std::string{redis::keys::queue_index}, user});
  ASSERT_TRUE(member);
  EXPECT_EQ(member->integer, 1);
}

/// A loopback port nobody listens on (bound, read, closed).
uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// A private redis-server on `port` (the shared test server must not be
/// restarted under other tests).
struct private_redis {
  uint16_t port;
  std::string dir = "/tmp/" + test::unique_name("batchq_sub_redis");

  explicit private_redis(uint16_t p) : port(p) { ::mkdir(dir.c_str(), 0700); }
  ~private_redis() {
    stop();
    std::system(("rm -rf " + dir).c_str());
  }

  bool start() {
    auto cmd = "redis-server --port " + std::to_string(port)
               + " --bind 127.0.0.1 --daemonize yes --save '' --appendonly no --dir " + dir
               + " --pidfile " + dir + "/redis.pid --logfile " + dir + "/redis.log";
    if (std::system(cmd.c_str()) != 0)
      return false;
    redis::client c{redis::endpoint{"127.0.0.1", port, 0}, {5ms, 20ms}};
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (c.command({"PING"}))
        return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  void stop() {
    redis::client c{redis::endpoint{"127.0.0.1", port, 0}};
    c.command({"SHUTDOWN", "NOSAVE"}); // the connection drops: an error is expected
  }
};

TEST_F(RedisSubscriber, TheSubscriberResubscribesAfterRedisRestarts) {
  private_redis server{free_port()};
  ASSERT_TRUE(server.start());
  auto ep = endpoint(0);
  ep.port = server.port;
  start(ep);
  ASSERT_TRUE(wait_ready(5s));
  server.stop();
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (ready() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(ready());
  ASSERT_TRUE(server.start());
  ASSERT_TRUE(wait_ready(5s));
  redis::client c{ep};
  auto n = c.command({"PUBLISH", std::string{redis::keys::users_channel}, user});
  ASSERT_TRUE(n);
  EXPECT_EQ(n->integer, 1);
  EXPECT_TRUE(wait_wants(user, 5s));
}

TEST_F(RedisSubscriber, ASubscriberWithoutRedisIsNotReadyAndStopsPromptly) {
  auto ep = endpoint();
  ep.port = free_port();
  start(ep);
  EXPECT_FALSE(ready());
  EXPECT_FALSE(ready());
  auto t0 = std::chrono::steady_clock::now();
  (*self)->monitor(sub);
  caf::anon_send_exit(sub, caf::exit_reason::user_shutdown);
  bool down = false;
  (*self)->receive([&](caf::down_msg&) { down = true; }, caf::after(5s) >> [] {});
  EXPECT_TRUE(down);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

} // namespace
