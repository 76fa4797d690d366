// src/redis/turns: the turn script (leases, capacity slots, claims, fenced and
// retry-safe writes, work in progress) and the renewal script, against the
// real Redis, with concurrent clients on their own connections.
#include "src/redis/turns.hpp"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "src/redis/subscription.hpp"
#include "tests/redis/redis_test_support.hpp"

using namespace std::chrono_literals;
using batchq::ec;
using batchq::is;
using batchq::message_of;
using namespace batchq::redis;
using batchq::redis::test::must;
using batchq::redis::test::pending_job;
using batchq::redis::test::scoped_user;
using batchq::redis::test::test_endpoint;
using batchq::redis::test::value_or;

namespace {

using outcome = turn_reply::outcome;

/// One user with queued jobs and the arguments of its turns.
struct turn_fixture : ::testing::Test {
  scoped_user u{"rt_turn"};
  std::string host = batchq::test::unique_name("rt_host");
  std::vector<std::string> ids;

  ~turn_fixture() override { u.c.command({"DEL", keys::capacity(host)}); }

  /// Creates `n` pending jobs, oldest first in `ids`.
  void create(int n) {
    for (int i = 0; i < n; ++i) {
      auto id = u.new_job_id();
      ASSERT_TRUE(create_job(u.c, id, u.name, pending_job(u.name), 0));
      ids.push_back(id);
    }
  }

  turn_args args(const std::string& token, turn_part part, int64_t capacity = 4) {
    turn_args a;
    a.user = u.name;
    a.token = token;
    a.host = host;
    a.slot = "slot-" + token;
    a.capacity = capacity;
    a.ttl = 10000ms;
    a.part = part;
    a.claim = {{"status", "running"}, {"node", "n1"}};
    return a;
  }

  static turn_write final_write(const std::string& id, const std::string& claim,
                                const std::string& to = "done") {
    turn_write w;
    w.job_id = id;
    w.expected_status = "running";
    w.expected_claim = claim;
    w.to_status = to;
    w.kind = write_kind::final;
    w.ttl_seconds = 600;
    w.set = {{"status", to}};
    return w;
  }

  /// Round trips of `f()` on u.c, without the extra one of an EVALSHA that hit
  /// NOSCRIPT (another test process may flush the script cache at any time).
  template <class F>
  uint64_t cost(F f) {
    auto before = u.c.round_trips();
    auto fallbacks = u.c.noscript_fallbacks();
    f();
    return u.c.round_trips() - before - (u.c.noscript_fallbacks() - fallbacks);
  }

  turn_reply step(const turn_args& a) {
    auto r = turn_step(u.c, a);
    EXPECT_TRUE(r) << message_of(r.error());
    return r ? *r : turn_reply{};
  }

  std::string field(const std::string& id, const std::string& name) {
    auto r = must(u.c, {"HGET", keys::job(id), name});
    return r.is_string() ? r.str : std::string{"<nil>"};
  }

  std::vector<std::string> list(const std::string& key) {
    std::vector<std::string> out;
    for (auto& e : must(u.c, {"LRANGE", key, "0", "-1"}).elements)
      out.push_back(e.str);
    return out;
  }
};

} // namespace

TEST_F(turn_fixture, AFirstStepTakesTheLeaseAndASlotAndClaimsTheOldestJobInOneRoundTrip) {
  create(2);
  turn_reply r;
  EXPECT_EQ(cost([&] { r = step(args("t1", turn_part::next)); }), 1u);
  ASSERT_EQ(r.what, outcome::job);
  ASSERT_EQ(r.jobs.size(), 1u);
  EXPECT_EQ(r.jobs[0].job_id, ids[0]);
  EXPECT_EQ(r.jobs[0].fields.at("status"), "running");
  EXPECT_EQ(r.jobs[0].fields.at("node"), "n1");
  EXPECT_EQ(r.jobs[0].fields.at("claim"), "t1");
  EXPECT_EQ(value_or(lease_holder(u.c, u.name), std::nullopt), "t1");
  EXPECT_GT(must(u.c, {"PTTL", keys::lock_user(u.name)}).integer, 0);
  EXPECT_TRUE(must(u.c, {"ZSCORE", keys::capacity(host), "slot-t1"}).is_string());
  EXPECT_EQ(list(keys::wip_user(u.name)), std::vector<std::string>{ids[0]});
  EXPECT_EQ(must(u.c, {"SISMEMBER", std::string{keys::wip_users}, u.name}).integer, 1);
  EXPECT_EQ(list(keys::queue(u.name)), std::vector<std::string>{ids[1]});
}

TEST_F(turn_fixture, ALeaseHeldByAnotherTokenIsBusyAndNothingIsTaken) {
  create(1);
  must(u.c, {"SET", keys::lock_user(u.name), "other", "PX", "10000"});
  auto r = step(args("t1", turn_part::next));
  EXPECT_EQ(r.what, outcome::busy);
  EXPECT_EQ(value_or(lease_holder(u.c, u.name), std::nullopt), "other");
  EXPECT_EQ(must(u.c, {"ZCARD", keys::capacity(host)}).integer, 0);
  EXPECT_EQ(field(ids[0], "status"), "pending");
}

TEST_F(turn_fixture, ANextTurnOfTheSameNodeTakesOverTheLeaseOfItsFencedTurnButNoOtherOne) {
  create(2);
  step(args("fenced", turn_part::next)); // its deadline passed here; Redis still has the lease
  auto plain = step(args("t2", turn_part::next));
  EXPECT_EQ(plain.what, outcome::busy);
  auto a = args("t2", turn_part::next);
  a.inherit = "someone-else";
  EXPECT_EQ(step(a).what, outcome::busy);
  a.inherit = "fenced";
  auto r = step(a);
  ASSERT_EQ(r.what, outcome::recover); // the fenced turn's job is an orphan to settle
  EXPECT_EQ(r.jobs[0].job_id, ids[0]);
  EXPECT_EQ(value_or(lease_holder(u.c, u.name), std::nullopt), "t2");
}

TEST_F(turn_fixture, AHostAtCapacityIsFullAndNothingIsKept) {
  create(1);
  must(u.c, {"ZADD", keys::capacity(host), "99999999999999", "someone-else"});
  auto r = step(args("t1", turn_part::next, 1));
  EXPECT_EQ(r.what, outcome::full);
  EXPECT_EQ(value_or(lease_holder(u.c, u.name), std::nullopt), std::nullopt);
  EXPECT_EQ(field(ids[0], "status"), "pending");
}

TEST_F(turn_fixture, NothingQueuedIsEmptyTakesNothingAndLeavesTheQueueIndex) {
  must(u.c, {"SADD", std::string{keys::queue_index}, u.name});
  auto r = step(args("t1", turn_part::next));
  EXPECT_EQ(r.what, outcome::empty);
  EXPECT_EQ(value_or(lease_holder(u.c, u.name), std::nullopt), std::nullopt);
  EXPECT_EQ(must(u.c, {"ZCARD", keys::capacity(host)}).integer, 0);
  EXPECT_EQ(must(u.c, {"SISMEMBER", std::string{keys::queue_index}, u.name}).integer, 0);
}

TEST_F(turn_fixture, AFinalWriteAndTheNextClaimAreOneRoundTrip) {
  create(2);
  step(args("t1", turn_part::next));
  auto sub = subscription::open(test_endpoint(), {std::string{keys::jobs_final_channel}});
  ASSERT_TRUE(sub) << message_of(sub.error());
  auto a = args("t1", turn_part::next);
  a.write = final_write(ids[0], "t1");
  turn_reply r;
  EXPECT_EQ(cost([&] { r = step(a); }), 1u);
  // The final write announces the job to the API's long-polls (other tests
  // publish on the channel too).
  bool heard = false;
  for (int i = 0; i < 50 && !heard; ++i) {
    auto m = (*sub)->next(200ms);
    heard = m && *m && (*m)->payload == ids[0];
  }
  EXPECT_TRUE(heard) << "the final write was not published on " << keys::jobs_final_channel;
  EXPECT_EQ(r.write, turn_reply::written::yes);
  ASSERT_EQ(r.what, outcome::job);
  EXPECT_EQ(r.jobs[0].job_id, ids[1]);
  EXPECT_EQ(field(ids[0], "status"), "done");
  EXPECT_EQ(field(ids[0], "claim"), "t1");
  auto ttl = must(u.c, {"TTL", keys::job(ids[0])}).integer;
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 600);
  EXPECT_EQ(list(keys::wip_user(u.name)), std::vector<std::string>{ids[1]});
}

TEST_F(turn_fixture, AFinalWriteExpiresTheJobsKeptResultsWithItsHash) {
  create(1);
  step(args("t1", turn_part::next));
  must(u.c, {"RPUSH", keys::results(ids[0]), R"(["1"])"});
  auto a = args("t1", turn_part::none);
  a.write = final_write(ids[0], "t1");
  step(a);
  auto job_ttl = must(u.c, {"TTL", keys::job(ids[0])}).integer;
  auto rows_ttl = must(u.c, {"TTL", keys::results(ids[0])}).integer;
  must(u.c, {"DEL", keys::results(ids[0])});
  EXPECT_GT(rows_ttl, 0);
  EXPECT_LE(rows_ttl, job_ttl);
}

TEST_F(turn_fixture, TheFinalWriteOfTheLastJobReleasesLeaseAndSlotAndLeavesTheIndexes) {
  create(1);
  step(args("t1", turn_part::next));
  auto a = args("t1", turn_part::next);
  a.write = final_write(ids[0], "t1");
  auto r = step(a);
  EXPECT_EQ(r.what, outcome::empty);
  EXPECT_EQ(value_or(lease_holder(u.c, u.name), std::nullopt), std::nullopt);
  EXPECT_EQ(must(u.c, {"ZCARD", keys::capacity(host)}).integer, 0);
  EXPECT_EQ(must(u.c, {"SISMEMBER", std::string{keys::queue_index}, u.name}).integer, 0);
  EXPECT_EQ(must(u.c, {"SISMEMBER", std::string{keys::wip_users}, u.name}).integer, 0);
}

TEST_F(turn_fixture, ARetriedFinalWriteIsAppliedOnceAndAnswersTheSameNextJob) {
  create(3);
  step(args("t1", turn_part::next));
  auto a = args("t1", turn_part::next);
  a.write = final_write(ids[0], "t1");
  auto first = step(a);
  ASSERT_EQ(first.what, outcome::job);
  // The reply was lost: the same step again.
  auto again = step(a);
  EXPECT_EQ(again.write, turn_reply::written::applied);
  ASSERT_EQ(again.what, outcome::job);
  EXPECT_EQ(again.jobs[0].job_id, ids[1]);
  EXPECT_EQ(field(ids[2], "status"), "pending"); // never skipped ahead
  EXPECT_EQ(list(keys::queue(u.name)), std::vector<std::string>{ids[2]});
}

TEST_F(turn_fixture, ARetriedClaimAnswersTheSameJobAndNeverTheNextOne) {
  create(2);
  auto first = step(args("t1", turn_part::next));
  auto again = step(args("t1", turn_part::next));
  ASSERT_EQ(again.what, outcome::job);
  EXPECT_EQ(again.jobs[0].job_id, first.jobs[0].job_id);
  EXPECT_EQ(field(ids[1], "status"), "pending");
}

TEST_F(turn_fixture, ARetriedLastFinalWriteAfterTheReleaseIsAppliedAndTakesNothing) {
  create(1);
  step(args("t1", turn_part::next));
  auto a = args("t1", turn_part::next);
  a.write = final_write(ids[0], "t1");
  ASSERT_EQ(step(a).what, outcome::empty);
  auto again = step(a);
  EXPECT_EQ(again.write, turn_reply::written::applied);
  EXPECT_EQ(again.what, outcome::empty);
  EXPECT_EQ(value_or(lease_holder(u.c, u.name), std::nullopt), std::nullopt);
}

TEST_F(turn_fixture, AJobRunningUnderAnotherClaimIsAnOrphanReturnedBeforeAnyLaterJob) {
  create(2);
  step(args("dead", turn_part::next));
  must(u.c, {"DEL", keys::lock_user(u.name)}); // the dead node's lease expired
  auto r = step(args("t2", turn_part::next));
  ASSERT_EQ(r.what, outcome::recover);
  ASSERT_EQ(r.jobs.size(), 1u);
  EXPECT_EQ(r.jobs[0].job_id, ids[0]);
  EXPECT_EQ(r.jobs[0].fields.at("claim"), "dead");
  EXPECT_EQ(value_or(lease_holder(u.c, u.name), std::nullopt), "t2");
  EXPECT_EQ(field(ids[1], "status"), "pending"); // the later job waits
}

TEST_F(turn_fixture, AnOrphanIsSettledByACompareAndSetOnItsClaimThenTheNextJobIsClaimed) {
  create(2);
  step(args("dead", turn_part::next));
  must(u.c, {"DEL", keys::lock_user(u.name)});
  step(args("t2", turn_part::next));
  auto wrong = args("t2", turn_part::none);
  wrong.write = final_write(ids[0], "someone", "failed");
  auto refused = turn_step(u.c, wrong);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(is(refused.error(), ec::invalid_transition)) << message_of(refused.error());
  EXPECT_EQ(field(ids[0], "status"), "running");
  auto settle = args("t2", turn_part::next);
  settle.write = final_write(ids[0], "dead", "failed");
  auto r = step(settle);
  EXPECT_EQ(r.write, turn_reply::written::yes);
  ASSERT_EQ(r.what, outcome::job);
  EXPECT_EQ(r.jobs[0].job_id, ids[1]);
  EXPECT_EQ(field(ids[0], "status"), "failed");
  EXPECT_EQ(field(ids[0], "claim"), "t2");
}

TEST_F(turn_fixture, StaleWorkInProgressIsDroppedAndAPendingEntryGoesBackToTheHead) {
  create(2);
  auto gone = u.new_job_id();
  auto finished = u.new_job_id();
  must(u.c, {"HSET", keys::job(finished), "user", u.name, "status", "done"});
  // ids[0] dequeued but never claimed (still pending), plus two stale entries.
  must(u.c, {"LREM", keys::queue(u.name), "0", ids[0]});
  must(u.c, {"LPUSH", keys::wip_user(u.name), ids[0], gone, finished});
  auto r = step(args("t1", turn_part::next));
  ASSERT_EQ(r.what, outcome::job);
  EXPECT_EQ(r.jobs[0].job_id, ids[0]);
  EXPECT_EQ(list(keys::wip_user(u.name)), std::vector<std::string>{ids[0]});
  EXPECT_EQ(list(keys::queue(u.name)), std::vector<std::string>{ids[1]});
}

TEST_F(turn_fixture, QueuedIdsWhoseJobIsGoneOrNoLongerPendingAreSkipped) {
  create(3);
  must(u.c, {"DEL", keys::job(ids[0])});
  must(u.c, {"HSET", keys::job(ids[1]), "status", "cancelled"});
  auto r = step(args("t1", turn_part::next));
  ASSERT_EQ(r.what, outcome::job);
  EXPECT_EQ(r.jobs[0].job_id, ids[2]);
  EXPECT_TRUE(list(keys::queue(u.name)).empty());
}

TEST_F(turn_fixture, AWriteByATurnThatLostItsLeaseChangesNothing) {
  create(1);
  step(args("t1", turn_part::next));
  must(u.c, {"SET", keys::lock_user(u.name), "t2", "PX", "10000"});
  auto a = args("t1", turn_part::release);
  a.write = final_write(ids[0], "t1");
  auto r = turn_step(u.c, a);
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), ec::lease_lost)) << message_of(r.error());
  EXPECT_EQ(field(ids[0], "status"), "running");
  EXPECT_EQ(value_or(lease_holder(u.c, u.name), std::nullopt), "t2");
  EXPECT_EQ(list(keys::wip_user(u.name)), std::vector<std::string>{ids[0]});
}

TEST_F(turn_fixture, AProgressWriteKeepsTheJobRunningAndNeedsTheLease) {
  create(1);
  step(args("t1", turn_part::next));
  auto a = args("t1", turn_part::none);
  turn_write w;
  w.job_id = ids[0];
  w.expected_status = "running";
  w.expected_claim = "t1";
  w.to_status = "running";
  w.set = {{"step_status", "running"}};
  w.del = {"failed_reason"};
  a.write = w;
  auto r = step(a);
  EXPECT_EQ(r.write, turn_reply::written::yes);
  EXPECT_EQ(r.what, outcome::none);
  EXPECT_EQ(field(ids[0], "step_status"), "running");
  EXPECT_EQ(must(u.c, {"TTL", keys::job(ids[0])}).integer, -1);
  must(u.c, {"DEL", keys::lock_user(u.name)});
  auto lost = turn_step(u.c, a);
  ASSERT_FALSE(lost);
  EXPECT_TRUE(is(lost.error(), ec::lease_lost));
}

TEST_F(turn_fixture, ARequeueGoesToTheHeadReleasesAndPublishesTheUserAfterTheRelease) {
  create(2);
  step(args("t1", turn_part::next));
  auto sub = subscription::open(test_endpoint(), {std::string{keys::users_channel}});
  ASSERT_TRUE(sub) << message_of(sub.error());
  auto a = args("t1", turn_part::release);
  turn_write w;
  w.job_id = ids[0];
  w.expected_status = "running";
  w.expected_claim = "t1";
  w.to_status = "pending";
  w.kind = write_kind::requeue;
  w.set = {{"status", "pending"}};
  a.write = w;
  auto r = step(a);
  ASSERT_EQ(r.what, outcome::released);
  EXPECT_EQ(r.queue_length, 2);
  EXPECT_EQ(field(ids[0], "status"), "pending");
  EXPECT_EQ(list(keys::queue(u.name)), (std::vector<std::string>{ids[1], ids[0]}));
  EXPECT_TRUE(list(keys::wip_user(u.name)).empty());
  // The announcement came after the release: a node hearing it finds the
  // lease free and takes the requeued job first.
  std::optional<std::string> heard;
  for (int i = 0; i < 50 && heard != u.name; ++i) {
    auto m = (*sub)->next(200ms);
    if (m && *m)
      heard = (*m)->payload;
  }
  EXPECT_EQ(heard, u.name);
  auto next = step(args("t2", turn_part::next));
  ASSERT_EQ(next.what, outcome::job);
  EXPECT_EQ(next.jobs[0].job_id, ids[0]);
}

TEST_F(turn_fixture, ARetriedRequeueAfterItsReleaseIsApplied) {
  create(1);
  step(args("t1", turn_part::next));
  auto a = args("t1", turn_part::release);
  turn_write w;
  w.job_id = ids[0];
  w.expected_status = "running";
  w.expected_claim = "t1";
  w.to_status = "pending";
  w.kind = write_kind::requeue;
  w.set = {{"status", "pending"}};
  a.write = w;
  step(a);
  auto again = step(a);
  EXPECT_EQ(again.write, turn_reply::written::applied);
  EXPECT_EQ(list(keys::queue(u.name)), std::vector<std::string>{ids[0]});
}

TEST_F(turn_fixture, RenewalExtendsHeldLeasesAndSlotsPutsBackAPrunedSlotAndNamesLostLeases) {
  create(1);
  step(args("t1", turn_part::next));
  must(u.c, {"PEXPIRE", keys::lock_user(u.name), "3000"});
  must(u.c, {"ZREM", keys::capacity(host), "slot-t1"}); // pruned (e.g. Redis was away)
  scoped_user other{"rt_turn"};
  std::vector<held_turn> held{{u.name, "t1", host, "slot-t1"}, {other.name, "gone", host, "s2"}};
  caf::expected<std::vector<bool>> r{std::vector<bool>{}};
  EXPECT_EQ(cost([&] { r = renew_turns(u.c, held, 20000ms); }), 1u);
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_EQ(*r, (std::vector<bool>{true, false}));
  EXPECT_GT(must(u.c, {"PTTL", keys::lock_user(u.name)}).integer, 10000);
  EXPECT_TRUE(must(u.c, {"ZSCORE", keys::capacity(host), "slot-t1"}).is_string());
  EXPECT_FALSE(must(u.c, {"ZSCORE", keys::capacity(host), "s2"}).is_string());
}

TEST_F(turn_fixture, HostsAndAnnouncementsOfManyUsersAreOnePipelineEach) {
  scoped_user a{"rt_turn"};
  must(u.c, {"HSET", keys::rails_user(a.name), "database_host", "db-a"});
  caf::expected<std::vector<std::string>> hosts{std::vector<std::string>{}};
  EXPECT_EQ(cost([&] { hosts = database_hosts(u.c, {a.name, u.name}); }), 1u);
  ASSERT_TRUE(hosts);
  EXPECT_EQ(*hosts, (std::vector<std::string>{"db-a", ""}));
  EXPECT_EQ(cost([&] { EXPECT_TRUE(announce_users(u.c, {a.name, u.name})); }), 1u);
  must(u.c, {"DEL", keys::rails_user(a.name)});
}

TEST(Turns, TwoTurnsRacingForOneUserNeverBothHoldItAndNoJobRunsTwice) {
  constexpr int jobs = 60;
  scoped_user u{"rt_race"};
  const auto host = batchq::test::unique_name("rt_host");
  for (int i = 0; i < jobs; ++i) {
    auto id = u.new_job_id();
    ASSERT_TRUE(create_job(u.c, id, u.name, pending_job(u.name), 0));
  }
  std::atomic<int> holders{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> errors{0};
  std::mutex mtx;
  std::multiset<std::string> ran;
  auto racer = [&](std::string node) {
    client c{test_endpoint()};
    for (int round = 0; round < 400; ++round) {
      turn_args a;
      a.user = u.name;
      a.token = node + "-" + std::to_string(round);
      a.host = host;
      a.slot = a.token;
      a.ttl = 10000ms;
      a.part = turn_part::next;
      a.claim = {{"status", "running"}, {"node", node}};
      auto r = turn_step(c, a);
      if (!r) {
        ++errors;
        return;
      }
      if (r->what == outcome::empty)
        return;
      if (r->what != outcome::job)
        continue; // busy: the other one holds it
      if (++holders > 1)
        ++overlaps;
      {
        std::lock_guard<std::mutex> guard{mtx};
        ran.insert(r->jobs[0].job_id);
      }
      --holders;
      turn_write w;
      w.job_id = r->jobs[0].job_id;
      w.expected_status = "running";
      w.expected_claim = a.token;
      w.to_status = "done";
      w.kind = write_kind::final;
      w.set = {{"status", "done"}};
      a.write = w;
      a.part = turn_part::release;
      if (!turn_step(c, a))
        ++errors;
    }
  };
  std::thread t1{racer, "n1"};
  std::thread t2{racer, "n2"};
  t1.join();
  t2.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(ran.size(), static_cast<size_t>(jobs));
  EXPECT_EQ(std::set<std::string>(ran.begin(), ran.end()).size(), static_cast<size_t>(jobs));
  u.c.command({"DEL", keys::capacity(host)});
}

TEST(Turns, ConcurrentTurnsOfManyUsersNeverExceedTheHostCapacity) {
  constexpr int threads = 8;
  constexpr int users = 12;
  constexpr int per_user = 10;
  constexpr int64_t capacity = 3;
  const auto host = batchq::test::unique_name("rt_host");
  std::vector<std::unique_ptr<scoped_user>> us;
  for (int i = 0; i < users; ++i) {
    us.push_back(std::make_unique<scoped_user>("rt_cap"));
    for (int j = 0; j < per_user; ++j) {
      auto id = us.back()->new_job_id();
      ASSERT_TRUE(create_job(us.back()->c, id, us.back()->name, pending_job(us.back()->name), 0));
    }
  }
  std::atomic<int> errors{0};
  std::atomic<int> done{0};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> max_zcard{0};
  auto worker = [&](int t) {
    client c{test_endpoint()};
    for (int round = 0; done < users * per_user && round < 20000; ++round) {
      auto& u = *us[(t + round) % users];
      turn_args a;
      a.user = u.name;
      a.token = "w" + std::to_string(t) + "-" + std::to_string(round);
      a.host = host;
      a.slot = a.token;
      a.capacity = capacity;
      a.ttl = 10000ms;
      a.part = turn_part::next;
      a.claim = {{"status", "running"}};
      auto r = turn_step(c, a);
      if (!r) {
        ++errors;
        return;
      }
      if (r->what != outcome::job)
        continue;
      turn_write w;
      w.job_id = r->jobs[0].job_id;
      w.expected_status = "running";
      w.expected_claim = a.token;
      w.to_status = "done";
      w.kind = write_kind::final;
      w.set = {{"status", "done"}};
      a.write = w;
      a.part = turn_part::release;
      if (turn_step(c, a))
        ++done;
      else
        ++errors;
    }
  };
  std::thread monitor{[&] {
    client c{test_endpoint()};
    while (!stop) {
      auto n = c.command({"ZCARD", keys::capacity(host)});
      if (n && n->integer > max_zcard)
        max_zcard = n->integer;
    }
  }};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back(worker, t);
  for (auto& t : ts)
    t.join();
  stop = true;
  monitor.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(done.load(), users * per_user);
  EXPECT_LE(max_zcard.load(), capacity);
  client c{test_endpoint()};
  EXPECT_EQ(must(c, {"ZCARD", keys::capacity(host)}).integer, 0);
}
