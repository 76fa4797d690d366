// The scheduler's and the subscriber's real ports against a real Redis (DB 12,
// the subscriber DB 14; a unique user per test): ports::redis_coordination
// (renewal of every held lease and slot, database hosts, announcements, the
// crash sweep — one round trip each) and the detached coordination actor over
// it, ports::redis_queue_index, and a real subscriber actor with its SUBSCRIBE
// thread receiving a PUBLISH. Taking and giving back leases and slots is the
// turn script's (tests/redis/turns_test.cpp, redis_job_store_test.cpp). Waits
// are bounded (a deadline), never a fixed sleep standing in for a condition.
#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <set>
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

#include "actors/coordination.hpp"
#include "actors/subscriber.hpp"
#include "messages/type_ids.hpp"
#include "src/ports/redis_coordination.hpp"
#include "src/ports/redis_queue_index.hpp"
#include "src/redis/client.hpp"
#include "src/redis/embedded_scripts.hpp"
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

/// Round trips of one port call, exactly. Another test process may SCRIPT
/// FLUSH at any time (tests/redis/scripts_test.cpp), and an EVALSHA that meets
/// the flush costs one more round trip (NOSCRIPT, then EVAL). So the scripts
/// the call uses are loaded right before it, after a canary script; the count
/// is returned only when the canary is still cached afterwards (no flush came
/// after it), else nullopt: the count then proves nothing and the caller's
/// check is skipped (`value_or(expected)`).
struct round_trip_meter {
  redis::client probe{endpoint()};

  template <class Count, class F>
  std::optional<uint64_t> operator()(Count count, std::initializer_list<const redis::script*> used,
                                     F f) {
    auto canary = probe.command({"SCRIPT", "LOAD", "return 'batchq round-trip canary'"});
    EXPECT_TRUE(canary) << message_of(canary.error());
    for (const auto* s : used)
      EXPECT_TRUE(probe.command({"SCRIPT", "LOAD", std::string{s->text}}));
    auto before = count();
    f();
    auto n = count() - before;
    if (!canary)
      return std::nullopt;
    auto still = probe.command({"SCRIPT", "EXISTS", canary->str});
    if (!still || !still->is_array() || still->elements.size() != 1
        || still->elements[0].integer != 1)
      return std::nullopt;
    return n;
  }
};

/// Waits (bounded) on `sub` until every user in `users` was published.
bool heard_all(redis::subscription& sub, std::set<std::string> users) {
  // Other tests publish on the same channel: wait for ours, bounded.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!users.empty() && std::chrono::steady_clock::now() < deadline) {
    auto m = sub.next(500ms);
    EXPECT_TRUE(m) << message_of(m.error());
    if (!m)
      return false;
    if (*m)
      users.erase((*m)->payload);
  }
  return users.empty();
}

struct RedisCoordination : ::testing::Test {
  redis::client rc{endpoint()};
  redis::client rc_other{endpoint(other_db)};
  ports::redis_coordination port{endpoint(), test_db};
  round_trip_meter meter;
  std::string user = test::unique_name("coord");
  /// Two more users, for calls about several users at once.
  std::string second = test::unique_name("coord");
  std::string third = test::unique_name("coord");
  std::string host = test::unique_name("dbhost");

  ~RedisCoordination() override {
    for (const auto& u : {user, second, third}) {
      rc.command({"DEL", redis::keys::lock_user(u), redis::keys::queue(u),
                  redis::keys::rails_user(u)});
      rc.command({"SREM", std::string{redis::keys::queue_index}, u});
      rc_other.command({"DEL", redis::keys::rails_user(u)});
    }
    rc.command({"DEL", redis::keys::capacity(host)});
  }

  /// A lease as a turn leaves it: token `token`, expiring in `ttl_ms`.
  void hold(const std::string& u, const std::string& token, int64_t ttl_ms) {
    auto r = rc.command({"SET", redis::keys::lock_user(u), token, "PX", std::to_string(ttl_ms)});
    ASSERT_TRUE(r) << message_of(r.error());
  }

  std::optional<std::string> holder(const std::string& u) {
    auto h = redis::lease_holder(rc, u);
    EXPECT_TRUE(h);
    return h ? *h : std::nullopt;
  }

  int64_t integer(const std::vector<std::string>& cmd) {
    auto r = rc.command(cmd);
    EXPECT_TRUE(r) << message_of(r.error());
    return r ? r->integer : -99;
  }

  /// Redis' clock in ms (slot scores are expiry times on it).
  int64_t redis_now_ms() {
    auto t = rc.command({"TIME"});
    EXPECT_TRUE(t && t->is_array() && t->elements.size() == 2);
    if (!t || t->elements.size() != 2)
      return 0;
    return std::stoll(t->elements[0].str) * 1000 + std::stoll(t->elements[1].str) / 1000;
  }

  /// The expiry (ms) of slot `slot` of the fixture's host; nullopt when absent.
  std::optional<int64_t> slot_expiry(const std::string& slot) {
    auto r = rc.command({"ZSCORE", redis::keys::capacity(host), slot});
    EXPECT_TRUE(r) << message_of(r.error());
    if (!r || !r->is_string())
      return std::nullopt;
    return static_cast<int64_t>(std::stod(r->str));
  }
};

TEST_F(RedisCoordination, AnnouncePublishesEveryUserOnTheUsersChannelInOneRoundTrip) {
  auto sub = redis::subscription::open(endpoint(), {std::string{redis::keys::users_channel}});
  ASSERT_TRUE(sub) << message_of(sub.error());
  ASSERT_TRUE(port.announce({})); // connects; nothing to publish costs nothing
  auto before = port.round_trips();
  ASSERT_TRUE(port.announce({}));
  EXPECT_EQ(port.round_trips() - before, 0u);
  ASSERT_TRUE(port.announce({user, second}));
  EXPECT_EQ(port.round_trips() - before, 1u) << "one pipeline";
  EXPECT_TRUE(heard_all(**sub, {user, second}));
}

TEST_F(RedisCoordination, RenewalExtendsEveryHeldLeaseAndSlotInOneRoundTripAndNamesTheLostTokens) {
  hold(user, "token-a", 3000);
  hold(second, "token-of-another-node", 3000);
  // `third` has no lease any more (it expired).
  std::vector<held_lease> held{{user, "token-a", host, "slot-a"},
                               {second, "token-b", host, "slot-b"},
                               {third, "token-c", host, "slot-c"}};
  caf::expected<std::vector<std::string>> lost{caf::error{}};
  auto count = [&] { return port.round_trips(); };
  EXPECT_EQ(meter(count, {&redis::scripts::turns_renew}, [&] { lost = port.renew(held, 60s); })
              .value_or(1u),
            1u)
    << "three leases, one round trip";
  ASSERT_TRUE(lost) << message_of(lost.error());
  EXPECT_EQ(*lost, (std::vector<std::string>{"token-b", "token-c"}));
  EXPECT_GT(integer({"PTTL", redis::keys::lock_user(user)}), 30000) << "renewed";
  EXPECT_LE(integer({"PTTL", redis::keys::lock_user(second)}), 3000) << "another node's: untouched";
  EXPECT_EQ(holder(second), "token-of-another-node");
  EXPECT_EQ(holder(third), std::nullopt) << "a lost lease is not taken back";
  auto expiry = slot_expiry("slot-a");
  ASSERT_TRUE(expiry) << "the held lease's slot is (put back and) extended";
  EXPECT_GT(*expiry, redis_now_ms() + 30000);
  EXPECT_FALSE(slot_expiry("slot-b")) << "a lost lease's slot is left alone";
  EXPECT_FALSE(slot_expiry("slot-c"));

  // Nothing held: nothing to renew, no round trip.
  auto before = port.round_trips();
  auto none = port.renew({}, 60s);
  ASSERT_TRUE(none) << message_of(none.error());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(port.round_trips() - before, 0u);
}

TEST_F(RedisCoordination, ALeaseWithoutASlotIsRenewedAlone) {
  hold(user, "token-a", 3000);
  auto lost = port.renew({{user, "token-a", "", ""}}, 60s);
  ASSERT_TRUE(lost) << message_of(lost.error());
  EXPECT_TRUE(lost->empty());
  EXPECT_GT(integer({"PTTL", redis::keys::lock_user(user)}), 30000);
  EXPECT_EQ(integer({"EXISTS", redis::keys::capacity("")}), 0);
}

TEST_F(RedisCoordination, DatabaseHostsAreReadFromRailsUsersOnTheMetadataDatabaseInOnePipeline) {
  auto none = port.database_hosts({user});
  ASSERT_TRUE(none) << message_of(none.error());
  EXPECT_EQ(*none, std::vector<std::string>{""});
  rc.command({"HSET", redis::keys::rails_user(user), "database_host", "10.0.0.7"});
  rc.command({"HSET", redis::keys::rails_user(third), "database_host", "10.0.0.9"});
  auto before = port.round_trips();
  auto hosts = port.database_hosts({user, second, third});
  EXPECT_EQ(port.round_trips() - before, 1u) << "three users, one pipeline";
  ASSERT_TRUE(hosts) << message_of(hosts.error());
  EXPECT_EQ(*hosts, (std::vector<std::string>{"10.0.0.7", "", "10.0.0.9"}));
  before = port.round_trips();
  auto empty = port.database_hosts({});
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(port.round_trips() - before, 0u);

  // Leases in DB 12, metadata in DB 13.
  ports::redis_coordination split{endpoint(), other_db};
  rc_other.command({"HSET", redis::keys::rails_user(user), "database_host", "10.0.0.8"});
  hosts = split.database_hosts({user});
  ASSERT_TRUE(hosts) << message_of(hosts.error());
  EXPECT_EQ(*hosts, std::vector<std::string>{"10.0.0.8"});
  hold(user, "token-a", 3000);
  auto lost = split.renew({{user, "token-a", "", ""}}, 60s);
  ASSERT_TRUE(lost) << message_of(lost.error());
  EXPECT_TRUE(lost->empty()) << "the lease in the batch database";
  EXPECT_GT(integer({"PTTL", redis::keys::lock_user(user)}), 30000);
}

// -- the crash sweep: orphaned work in progress (SPEC §7) -----------------------

/// Two users with one job each in work in progress, as a turn's claim leaves
/// them; their keys go at the end of the test.
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
      rc.command({"DEL", redis::keys::wip_user(u), redis::keys::lock_user(u),
                  redis::keys::rails_user(u)});
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
  hold(held, "token-held", 30000);
  EXPECT_TRUE(reported(orphan));
  EXPECT_FALSE(reported(held));
  // A turn of this node takes the orphan's lease: it is no longer orphaned.
  hold(orphan, "token-sweeper", 30000);
  EXPECT_FALSE(reported(orphan));
  // The holder of `held` dies: its lease expires and it becomes orphaned.
  ASSERT_TRUE(rc.command({"PEXPIRE", redis::keys::lock_user(held), "1"}));
  auto deadline = std::chrono::steady_clock::now() + 10s;
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
  auto count = [&] { return port.round_trips(); };
  EXPECT_EQ(meter(count, {&redis::scripts::wip_orphans}, [&] { EXPECT_TRUE(port.orphaned_users()); })
              .value_or(1u),
            1u);
}

TEST_F(OrphanedUsers, TheDetachedCoordinationActorAnswersOverTheRealPort) {
  struct config : caf::actor_system_config {
    config() { register_types(*this); }
  } cfg;
  caf::actor_system sys{cfg};
  auto coord = spawn_coordination(sys, std::make_shared<ports::redis_coordination>(endpoint(),
                                                                                   test_db));
  caf::scoped_actor self{sys};
  auto fail = [](caf::error& e) { ADD_FAILURE() << message_of(e); };

  hold(held, "token-held", 3000);
  std::vector<std::string> lost{"<no answer>"};
  self
    ->request(coord, 10s, renew_atom::value,
              std::vector<held_lease>{{held, "token-held", host, "slot-h"},
                                      {orphan, "token-gone", host, "slot-o"}},
              int64_t{60000})
    .receive([&](std::vector<std::string>& x) { lost = std::move(x); }, fail);
  EXPECT_EQ(lost, std::vector<std::string>{"token-gone"});
  EXPECT_GT(integer({"PTTL", redis::keys::lock_user(held)}), 30000);
  EXPECT_TRUE(slot_expiry("slot-h"));

  rc.command({"HSET", redis::keys::rails_user(held), "database_host", "db-h"});
  std::vector<std::string> hosts;
  self->request(coord, 10s, hosts_atom::value, std::vector<std::string>{held, orphan})
    .receive([&](std::vector<std::string>& x) { hosts = std::move(x); }, fail);
  EXPECT_EQ(hosts, (std::vector<std::string>{"db-h", ""}));

  std::vector<std::string> orphans;
  self->request(coord, 10s, orphans_atom::value)
    .receive([&](std::vector<std::string>& x) { orphans = std::move(x); }, fail);
  EXPECT_EQ(std::count(orphans.begin(), orphans.end(), orphan), 1);
  EXPECT_EQ(std::count(orphans.begin(), orphans.end(), held), 0);

  auto sub = redis::subscription::open(endpoint(), {std::string{redis::keys::users_channel}});
  ASSERT_TRUE(sub) << message_of(sub.error());
  bool announced = false;
  self->request(coord, 10s, announce_atom::value, std::vector<std::string>{orphan})
    .receive([&](bool b) { announced = b; }, fail);
  EXPECT_TRUE(announced);
  EXPECT_TRUE(heard_all(**sub, {orphan}));
  self->send_exit(coord, caf::exit_reason::user_shutdown);
}

// -- the subscriber with its real SUBSCRIBE thread -------------------------------

/// Stands in for the scheduler: forwards every `wants` to the test's scoped actor.
scheduler_actor::behavior_type collector(scheduler_actor::pointer, caf::actor sink) {
  return {
    [=](wants_atom, const std::string& user) { caf::anon_send(sink, wants_atom::value, user); },
    [=](started_atom, const std::string&, const std::string&) {},
    [=](ended_atom, const turn_report&) {},
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
