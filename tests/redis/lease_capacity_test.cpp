// src/redis/ops: user leases and DB-host capacity slots (SPEC §5) against the
// real Redis, with concurrent clients on their own connections.
#include "src/redis/ops.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "tests/redis/redis_test_support.hpp"

using namespace std::chrono_literals;
using batchq::ec;
using batchq::is;
using batchq::message_of;
using namespace batchq::redis;
using batchq::redis::test::must;
using batchq::redis::test::value_or;
using batchq::redis::test::pending_job;
using batchq::redis::test::scoped_user;
using batchq::redis::test::test_endpoint;

namespace {

/// Lets `n` threads pass together, round after round.
class barrier {
public:
  explicit barrier(int n) : n_(n) {}
  void arrive_and_wait() {
    std::unique_lock<std::mutex> guard{mtx_};
    auto gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      ++gen_;
      cv_.notify_all();
      return;
    }
    cv_.wait(guard, [&] { return gen != gen_; });
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  int n_;
  int count_ = 0;
  int gen_ = 0;
};

} // namespace

TEST(UserLease, TwoClientsRacingForOneLeaseExactlyOneWins) {
  constexpr int rounds = 200;
  const auto prefix = batchq::test::unique_name("rt_race");
  barrier start{2};
  std::atomic<int> wins[rounds] = {};
  std::atomic<int> errors{0};
  auto racer = [&] {
    client c{test_endpoint()};
    auto token = random_token();
    c.ensure_connected();
    for (int i = 0; i < rounds; ++i) {
      start.arrive_and_wait();
      auto r = acquire_lease(c, prefix + "_" + std::to_string(i), token, 10000ms);
      if (!r)
        ++errors;
      else if (*r)
        ++wins[i];
    }
  };
  std::thread a{racer};
  std::thread b{racer};
  a.join();
  b.join();
  EXPECT_EQ(errors.load(), 0);
  for (int i = 0; i < rounds; ++i)
    EXPECT_EQ(wins[i].load(), 1) << "round " << i;
  client c{test_endpoint()};
  std::vector<std::string> del{"DEL"};
  for (int i = 0; i < rounds; ++i)
    del.push_back(keys::lock_user(prefix + "_" + std::to_string(i)));
  must(c, del);
}

TEST(UserLease, RenewAndReleaseByTheWrongTokenFailAndChangeNothing) {
  scoped_user u{"rt_lease"};
  auto token = random_token();
  ASSERT_TRUE(value_or(acquire_lease(u.c, u.name, token, 10000ms), false));
  auto intruder = random_token();
  EXPECT_FALSE(value_or(acquire_lease(u.c, u.name, intruder, 10000ms), true));
  auto renewed = renew_lease(u.c, u.name, intruder, 60000ms);
  ASSERT_FALSE(renewed);
  EXPECT_TRUE(is(renewed.error(), ec::lease_lost));
  EXPECT_LE(must(u.c, {"PTTL", keys::lock_user(u.name)}).integer, 10000);
  auto released = release_lease(u.c, u.name, intruder);
  ASSERT_TRUE(released);
  EXPECT_FALSE(*released);
  EXPECT_EQ(value_or(lease_holder(u.c, u.name), std::nullopt), token);
  // The holder can renew and release.
  EXPECT_TRUE(renew_lease(u.c, u.name, token, 60000ms));
  EXPECT_GT(must(u.c, {"PTTL", keys::lock_user(u.name)}).integer, 10000);
  EXPECT_TRUE(value_or(release_lease(u.c, u.name, token), false));
  EXPECT_EQ(value_or(lease_holder(u.c, u.name), std::string{"?"}), std::nullopt);
  // Renewing a released lease is lease_lost.
  auto late = renew_lease(u.c, u.name, token, 1000ms);
  ASSERT_FALSE(late);
  EXPECT_TRUE(is(late.error(), ec::lease_lost));
}

TEST(UserLease, TheLeaseIsAStringWithATtlAndExpires) {
  scoped_user u{"rt_ttl"};
  auto token = random_token();
  ASSERT_TRUE(value_or(acquire_lease(u.c, u.name, token, 1000ms), false));
  EXPECT_EQ(must(u.c, {"TYPE", "batch:locks:user:" + u.name}).str, "string");
  EXPECT_EQ(must(u.c, {"GET", "batch:locks:user:" + u.name}).str, token);
  auto pttl = must(u.c, {"PTTL", keys::lock_user(u.name)}).integer;
  EXPECT_GT(pttl, 0);
  EXPECT_LE(pttl, 1000);
  // Re-acquiring by the holder refreshes it.
  ASSERT_TRUE(value_or(acquire_lease(u.c, u.name, token, 5000ms), false));
  EXPECT_GT(must(u.c, {"PTTL", keys::lock_user(u.name)}).integer, 1000);
  ASSERT_TRUE(renew_lease(u.c, u.name, token, 200ms));
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(value_or(acquire_lease(u.c, u.name, random_token(), 5000ms), false));
}

TEST(UserLease, ReleaseIfIdleRefusesWhileTheQueueIsNotEmpty) {
  scoped_user u{"rt_idle"};
  auto token = random_token();
  ASSERT_TRUE(value_or(acquire_lease(u.c, u.name, token, 10000ms), false));
  auto id = u.new_job_id();
  ASSERT_TRUE(create_job(u.c, id, u.name, pending_job(u.name), 64));
  auto r = release_lease_if_idle(u.c, u.name, token);
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_EQ(*r, idle_release::queue_not_empty);
  EXPECT_EQ(value_or(lease_holder(u.c, u.name), std::nullopt), token);
  ASSERT_TRUE(dequeue_job(u.c, u.name, token, {{"status", "running"}}));
  auto r2 = release_lease_if_idle(u.c, u.name, token);
  ASSERT_TRUE(r2) << message_of(r2.error());
  EXPECT_EQ(*r2, idle_release::released);
  EXPECT_EQ(must(u.c, {"EXISTS", keys::lock_user(u.name)}).integer, 0);
  EXPECT_EQ(must(u.c, {"SISMEMBER", std::string{keys::queue_index}, u.name}).integer, 0);
}

TEST(UserLease, ReleaseIfIdleByANonHolderIsLeaseLost) {
  scoped_user u{"rt_idle_nh"};
  auto token = random_token();
  ASSERT_TRUE(value_or(acquire_lease(u.c, u.name, token, 10000ms), false));
  auto r = release_lease_if_idle(u.c, u.name, random_token());
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), ec::lease_lost));
  EXPECT_EQ(value_or(lease_holder(u.c, u.name), std::nullopt), token);
}

TEST(DbHostCapacity, ConcurrentAcquirersNeverExceedTheCapacity) {
  constexpr int threads = 8;
  constexpr int iterations = 40;
  constexpr int64_t capacity = 3;
  const auto host = batchq::test::unique_name("rt_host");
  std::atomic<int> holders{0};
  std::atomic<int> max_holders{0};
  std::atomic<int64_t> max_zcard{0};
  std::atomic<int> errors{0};
  std::atomic<bool> done{false};
  std::atomic<int> acquisitions{0};
  auto worker = [&] {
    client c{test_endpoint()};
    auto slot = random_token();
    for (int i = 0; i < iterations; ++i) {
      for (;;) {
        auto r = acquire_capacity(c, host, capacity, slot, 10000ms);
        if (!r) {
          ++errors;
          return;
        }
        if (*r)
          break;
        std::this_thread::sleep_for(200us);
      }
      ++acquisitions;
      int now = ++holders;
      int seen = max_holders.load();
      while (now > seen && !max_holders.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(500us);
      --holders;
      auto rel = release_capacity(c, host, slot);
      if (!rel || !*rel)
        ++errors;
    }
  };
  std::thread monitor{[&] {
    client c{test_endpoint()};
    while (!done) {
      auto n = c.command({"ZCARD", keys::capacity(host)});
      if (n && n->integer > max_zcard)
        max_zcard = n->integer;
    }
  }};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back(worker);
  for (auto& t : ts)
    t.join();
  done = true;
  monitor.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(acquisitions.load(), threads * iterations);
  EXPECT_LE(max_holders.load(), capacity);
  EXPECT_GE(max_holders.load(), 2); // there was contention to speak of
  EXPECT_LE(max_zcard.load(), capacity);
  client c{test_endpoint()};
  EXPECT_EQ(must(c, {"ZCARD", keys::capacity(host)}).integer, 0);
}

TEST(DbHostCapacity, SlotsAreAnExpiringSortedSetOnRedisClock) {
  client c{test_endpoint()};
  const auto host = batchq::test::unique_name("rt_host");
  auto slot = random_token();
  ASSERT_TRUE(value_or(acquire_capacity(c, host, 2, slot, 5000ms), false));
  EXPECT_EQ(must(c, {"TYPE", "batch:capacity:" + host}).str, "zset");
  auto t = must(c, {"TIME"});
  auto now_ms = std::stoll(t.elements[0].str) * 1000 + std::stoll(t.elements[1].str) / 1000;
  auto score = std::stoll(must(c, {"ZSCORE", keys::capacity(host), slot}).str);
  EXPECT_GT(score, now_ms);
  EXPECT_LE(score, now_ms + 5000);
  auto pttl = must(c, {"PTTL", keys::capacity(host)}).integer;
  EXPECT_GT(pttl, 0);
  EXPECT_LE(pttl, 5001);
  EXPECT_TRUE(value_or(release_capacity(c, host, slot), false));
  EXPECT_FALSE(value_or(release_capacity(c, host, slot), true));
}

TEST(DbHostCapacity, AnExpiredSlotIsFreedForOthersAndCannotBeRenewed) {
  client c{test_endpoint()};
  const auto host = batchq::test::unique_name("rt_host");
  auto a = random_token();
  auto b = random_token();
  ASSERT_TRUE(value_or(acquire_capacity(c, host, 1, a, 300ms), false));
  EXPECT_FALSE(value_or(acquire_capacity(c, host, 1, b, 5000ms), true));
  EXPECT_TRUE(renew_capacity(c, host, a, 300ms));
  std::this_thread::sleep_for(400ms);
  auto renewed = renew_capacity(c, host, a, 5000ms);
  ASSERT_FALSE(renewed);
  EXPECT_TRUE(is(renewed.error(), ec::lease_lost)) << message_of(renewed.error());
  EXPECT_TRUE(value_or(acquire_capacity(c, host, 1, b, 5000ms), false));
  EXPECT_FALSE(value_or(acquire_capacity(c, host, 1, a, 5000ms), true));
  EXPECT_TRUE(value_or(release_capacity(c, host, b), false));
}

TEST(DbHostCapacity, ReacquiringAHeldSlotDoesNotTakeASecondOne) {
  client c{test_endpoint()};
  const auto host = batchq::test::unique_name("rt_host");
  auto a = random_token();
  ASSERT_TRUE(value_or(acquire_capacity(c, host, 2, a, 5000ms), false));
  ASSERT_TRUE(value_or(acquire_capacity(c, host, 2, a, 5000ms), false));
  EXPECT_EQ(must(c, {"ZCARD", keys::capacity(host)}).integer, 1);
  auto b = random_token();
  EXPECT_TRUE(value_or(acquire_capacity(c, host, 2, b, 5000ms), false));
  EXPECT_FALSE(value_or(acquire_capacity(c, host, 2, random_token(), 5000ms), true));
  must(c, {"DEL", keys::capacity(host)});
}
