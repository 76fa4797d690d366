// src/redis/ops: job operations against the real Redis (SPEC §4, §5, §7).
#include "src/redis/ops.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
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
using batchq::redis::test::value_or;
using batchq::redis::test::pending_job;
using batchq::redis::test::scoped_user;
using batchq::redis::test::test_endpoint;

namespace {

const std::string index_key{keys::queue_index};
const std::string wip_users_key{keys::wip_users};

bool is_member(client& c, const std::string& set, const std::string& member) {
  return must(c, {"SISMEMBER", set, member}).integer == 1;
}

std::string type_of(client& c, const std::string& key) {
  return must(c, {"TYPE", key}).str;
}

int64_t ttl_of(client& c, const std::string& key) {
  return must(c, {"TTL", key}).integer;
}

std::vector<std::string> ids(caf::expected<std::vector<std::string>> x) {
  EXPECT_TRUE(x);
  return x ? *x : std::vector<std::string>{};
}

field_map hash(client& c, const std::string& id) {
  auto r = read_job(c, id);
  EXPECT_TRUE(r && *r) << "job " << id;
  return r && *r ? **r : field_map{};
}

/// Creates a pending job for `u` and returns its id.
std::string create(scoped_user& u, int64_t max_queued = 64) {
  auto id = u.new_job_id();
  auto r = create_job(u.c, id, u.name, pending_job(u.name), max_queued);
  EXPECT_TRUE(r) << message_of(r.error());
  return id;
}

std::string hold_lease(scoped_user& u) {
  auto token = random_token();
  auto ok = acquire_lease(u.c, u.name, token, 10000ms);
  EXPECT_TRUE(ok && *ok);
  return token;
}

const field_list running{{"status", "running"}, {"node", "node-a"}};

} // namespace

TEST(RedisJobs, CreateWritesTheCartoLayoutAndPublishesTheUser) {
  scoped_user u{"rt_create"};
  auto sub = subscription::open(test_endpoint(), {std::string{keys::users_channel}});
  ASSERT_TRUE(sub) << message_of(sub.error());
  auto id = u.new_job_id();
  auto len = create_job(u.c, id, u.name, pending_job(u.name, "select 42"), 64);
  ASSERT_TRUE(len) << message_of(len.error());
  EXPECT_EQ(*len, 1);
  // batch:jobs:{id} is a hash with CARTO's fields, no TTL while not final.
  EXPECT_EQ(type_of(u.c, "batch:jobs:" + id), "hash");
  auto h = hash(u.c, id);
  EXPECT_EQ(h["user"], u.name);
  EXPECT_EQ(h["status"], "pending");
  EXPECT_EQ(h["query"], "select 42");
  EXPECT_EQ(h["host"], "127.0.0.1");
  EXPECT_EQ(h["port"], "5432");
  EXPECT_EQ(h["dbname"], "db_" + u.name);
  EXPECT_EQ(h["dbuser"], "role_" + u.name);
  EXPECT_EQ(h["created_at"].size(), 24u) << h["created_at"]; // 2026-11-28T17:36:10.905Z
  EXPECT_EQ(h["created_at"].back(), 'Z');
  EXPECT_EQ(h["updated_at"], h["created_at"]);
  EXPECT_EQ(h.count("pass"), 0u);
  EXPECT_EQ(ttl_of(u.c, "batch:jobs:" + id), -1);
  // batch:queue:{user} is a list holding the id; the user is indexed.
  EXPECT_EQ(type_of(u.c, "batch:queue:" + u.name), "list");
  EXPECT_EQ(ids(queued_job_ids(u.c, u.name)), std::vector<std::string>{id});
  EXPECT_EQ(type_of(u.c, "batch:indexes:queue"), "set");
  EXPECT_TRUE(is_member(u.c, "batch:indexes:queue", u.name));
  // batch:users announced the user (other tests may publish too).
  bool seen = false;
  for (int i = 0; i < 1000 && !seen; ++i) {
    auto m = (*sub)->next(2000ms);
    ASSERT_TRUE(m && *m) << "no message on batch:users";
    EXPECT_EQ((*m)->channel, "batch:users");
    seen = (*m)->payload == u.name;
  }
  EXPECT_TRUE(seen);
}

TEST(RedisJobs, NewJobsArePushedAtTheHeadAndTakenFromTheTail) {
  scoped_user u{"rt_order"};
  auto a = create(u);
  auto b = create(u);
  auto c = create(u);
  EXPECT_EQ(ids(queued_job_ids(u.c, u.name)), (std::vector<std::string>{c, b, a}));
  auto token = hold_lease(u);
  for (const auto& expected : {a, b, c}) {
    auto d = dequeue_job(u.c, u.name, token);
    ASSERT_TRUE(d && *d);
    EXPECT_EQ((*d)->job_id, expected);
  }
}

TEST(RedisJobs, CreateRefusesAnExistingJobIdAndWritesNothing) {
  scoped_user u{"rt_dup"};
  auto id = create(u);
  auto r = create_job(u.c, id, u.name, pending_job(u.name, "select 2"), 64);
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), ec::job_exists)) << message_of(r.error());
  EXPECT_EQ(hash(u.c, id)["query"], "select 1");
  EXPECT_EQ(ids(queued_job_ids(u.c, u.name)).size(), 1u);
}

TEST(RedisJobs, QueueFullNamesTheLimitAndWritesNothing) {
  scoped_user u{"rt_full"};
  create(u, 2);
  create(u, 2);
  auto id = u.new_job_id();
  auto r = create_job(u.c, id, u.name, pending_job(u.name), 2);
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), ec::queue_full));
  EXPECT_EQ(message_of(r.error()), "Failed to create job. Max number of jobs (2) queued reached");
  EXPECT_EQ(must(u.c, {"EXISTS", keys::job(id)}).integer, 0);
  EXPECT_EQ(ids(queued_job_ids(u.c, u.name)).size(), 2u);
}

TEST(RedisJobs, QueueLimitHoldsUnderConcurrentCreates) {
  scoped_user u{"rt_limit"};
  constexpr int threads = 8;
  constexpr int per_thread = 20;
  constexpr int64_t limit = 64;
  std::atomic<int> ok{0};
  std::atomic<int> full{0};
  std::atomic<int> other{0};
  std::vector<std::vector<std::string>> created(threads);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      client c{test_endpoint()};
      for (int i = 0; i < per_thread; ++i) {
        auto id = random_token();
        auto r = create_job(c, id, u.name, pending_job(u.name), limit);
        if (r) {
          ++ok;
          created[t].push_back(id);
        } else if (is(r.error(), ec::queue_full)) {
          ++full;
        } else {
          ++other;
        }
      }
    });
  for (auto& t : ts)
    t.join();
  for (auto& v : created)
    u.jobs.insert(u.jobs.end(), v.begin(), v.end());
  EXPECT_EQ(ok.load(), limit);
  EXPECT_EQ(full.load(), threads * per_thread - limit);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(must(u.c, {"LLEN", keys::queue(u.name)}).integer, limit);
}

TEST(RedisJobs, DequeueMovesTheJobIntoWipAndReturnsItsFieldsInOneCall) {
  scoped_user u{"rt_deq"};
  auto first = create(u);
  auto second = create(u);
  auto token = hold_lease(u);
  auto d = dequeue_job(u.c, u.name, token, running);
  ASSERT_TRUE(d) << message_of(d.error());
  ASSERT_TRUE(*d);
  EXPECT_EQ((*d)->job_id, first);
  EXPECT_EQ((*d)->fields.at("status"), "running"); // claim fields written first
  EXPECT_EQ((*d)->fields.at("node"), "node-a");
  EXPECT_EQ((*d)->fields.at("user"), u.name);
  EXPECT_EQ(hash(u.c, first)["status"], "running");
  // WIP: list batch:wip:user:{user} + set batch:wip:users.
  EXPECT_EQ(type_of(u.c, keys::wip_user(u.name)), "list");
  EXPECT_EQ(ids(wip_job_ids(u.c, u.name)), std::vector<std::string>{first});
  EXPECT_EQ(type_of(u.c, wip_users_key), "set");
  EXPECT_TRUE(is_member(u.c, wip_users_key, u.name));
  auto wu = ids(wip_users(u.c));
  EXPECT_NE(std::find(wu.begin(), wu.end(), u.name), wu.end());
  EXPECT_EQ(ids(queued_job_ids(u.c, u.name)), std::vector<std::string>{second});
  EXPECT_TRUE(is_member(u.c, index_key, u.name));
  // Take the second; then the queue is empty and the user leaves the index.
  auto d2 = dequeue_job(u.c, u.name, token, running);
  ASSERT_TRUE(d2 && *d2);
  EXPECT_EQ((*d2)->job_id, second);
  EXPECT_EQ(ids(wip_job_ids(u.c, u.name)), (std::vector<std::string>{second, first}));
  EXPECT_TRUE(is_member(u.c, index_key, u.name)); // not yet known to be empty
  auto d3 = dequeue_job(u.c, u.name, token, running);
  ASSERT_TRUE(d3) << message_of(d3.error());
  EXPECT_FALSE(*d3);
  EXPECT_FALSE(is_member(u.c, index_key, u.name));
}

TEST(RedisJobs, DequeueSkipsIdsWhoseJobIsGoneOrNotPending) {
  scoped_user u{"rt_skip"};
  auto cancelled = create(u);
  auto gone = create(u);
  auto good = create(u);
  must(u.c, {"HSET", keys::job(cancelled), "status", "cancelled"});
  must(u.c, {"DEL", keys::job(gone)});
  auto token = hold_lease(u);
  auto d = dequeue_job(u.c, u.name, token, running);
  ASSERT_TRUE(d && *d);
  EXPECT_EQ((*d)->job_id, good);
  EXPECT_TRUE(ids(queued_job_ids(u.c, u.name)).empty());
  EXPECT_EQ(ids(wip_job_ids(u.c, u.name)), std::vector<std::string>{good});
  EXPECT_EQ(hash(u.c, cancelled)["status"], "cancelled"); // skipped ids are left alone
}

TEST(RedisJobs, StatusWriteSetsTheTtlAndLeavesWipOnlyOnAFinalStatus) {
  scoped_user u{"rt_write"};
  auto id = create(u);
  auto token = hold_lease(u);
  ASSERT_TRUE(dequeue_job(u.c, u.name, token, running));
  auto w = write_job(u.c, id, u.name, token, {{"query", R"([{"query":"select 1","status":"running"}])"}},
                     write_mode{false, 100, "running", {}});
  ASSERT_TRUE(w) << message_of(w.error());
  EXPECT_EQ(ttl_of(u.c, keys::job(id)), -1);
  EXPECT_EQ(ids(wip_job_ids(u.c, u.name)), std::vector<std::string>{id});
  auto before = hash(u.c, id)["updated_at"];
  std::this_thread::sleep_for(5ms);
  auto done = write_job(u.c, id, u.name, token, {{"status", "done"}},
                        write_mode{true, 100, "running", {}});
  ASSERT_TRUE(done) << message_of(done.error());
  auto h = hash(u.c, id);
  EXPECT_EQ(h["status"], "done");
  EXPECT_NE(h["updated_at"], before);
  auto ttl = ttl_of(u.c, keys::job(id));
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 100);
  EXPECT_TRUE(ids(wip_job_ids(u.c, u.name)).empty());
  EXPECT_EQ(must(u.c, {"EXISTS", keys::wip_user(u.name)}).integer, 0);
  EXPECT_FALSE(is_member(u.c, wip_users_key, u.name));
}

TEST(RedisJobs, StatusWriteWithAStaleExpectedStatusChangesNothing) {
  scoped_user u{"rt_cas"};
  auto id = create(u);
  auto token = hold_lease(u);
  ASSERT_TRUE(dequeue_job(u.c, u.name, token, running));
  auto before = hash(u.c, id);
  auto w = write_job(u.c, id, u.name, token, {{"status", "done"}}, write_mode{true, 100, "pending", {}});
  ASSERT_FALSE(w);
  EXPECT_TRUE(is(w.error(), ec::invalid_transition)) << message_of(w.error());
  EXPECT_NE(message_of(w.error()).find("running"), std::string::npos);
  EXPECT_EQ(hash(u.c, id), before);
  EXPECT_EQ(ttl_of(u.c, keys::job(id)), -1);
  EXPECT_EQ(ids(wip_job_ids(u.c, u.name)), std::vector<std::string>{id});
}

TEST(RedisJobs, StatusWriteToAnotherUsersJobIsNotFound) {
  scoped_user u{"rt_owner"};
  scoped_user other{"rt_other"};
  auto id = create(u);
  auto token = hold_lease(other);
  auto w = write_job(other.c, id, other.name, token, {{"status", "running"}}, write_mode{});
  ASSERT_FALSE(w);
  EXPECT_TRUE(is(w.error(), ec::job_not_found));
  EXPECT_EQ(message_of(w.error()), "Job with id " + id + " not found");
  EXPECT_EQ(hash(u.c, id)["status"], "pending");
}

TEST(RedisJobs, RequeuedJobRunsBeforeOlderQueuedJobs) {
  scoped_user u{"rt_requeue"};
  auto j1 = create(u);
  auto j2 = create(u);
  auto j3 = create(u);
  auto token = hold_lease(u);
  auto d = dequeue_job(u.c, u.name, token, running);
  ASSERT_TRUE(d && *d);
  ASSERT_EQ((*d)->job_id, j1);
  auto sub = subscription::open(test_endpoint(), {std::string{keys::users_channel}});
  ASSERT_TRUE(sub);
  auto len = requeue_job(u.c, j1, u.name, token, {{"status", "pending"}});
  ASSERT_TRUE(len) << message_of(len.error());
  EXPECT_EQ(*len, 3);
  EXPECT_EQ(ids(queued_job_ids(u.c, u.name)), (std::vector<std::string>{j3, j2, j1}));
  EXPECT_TRUE(ids(wip_job_ids(u.c, u.name)).empty());
  EXPECT_FALSE(is_member(u.c, wip_users_key, u.name));
  EXPECT_TRUE(is_member(u.c, index_key, u.name));
  EXPECT_EQ(hash(u.c, j1)["status"], "pending");
  bool seen = false;
  for (int i = 0; i < 1000 && !seen; ++i) {
    auto m = (*sub)->next(2000ms);
    ASSERT_TRUE(m && *m);
    seen = (*m)->payload == u.name;
  }
  EXPECT_TRUE(seen);
  for (const auto& expected : {j1, j2, j3}) {
    auto next = dequeue_job(u.c, u.name, token, running);
    ASSERT_TRUE(next && *next);
    EXPECT_EQ((*next)->job_id, expected);
  }
}

TEST(RedisJobs, CancelPendingCancelsAQueuedJob) {
  scoped_user u{"rt_cancel"};
  auto id = create(u);
  auto r = cancel_pending_job(u.c, id, u.name, {{"status", "cancelled"}}, 100);
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_TRUE(r->cancelled);
  EXPECT_EQ(hash(u.c, id)["status"], "cancelled");
  EXPECT_TRUE(ids(queued_job_ids(u.c, u.name)).empty());
  EXPECT_FALSE(is_member(u.c, index_key, u.name));
  auto ttl = ttl_of(u.c, keys::job(id));
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 100);
}

TEST(RedisJobs, CancelPendingOfARunningJobReportsItsStatusAndChangesNothing) {
  scoped_user u{"rt_cancel_run"};
  auto id = create(u);
  auto token = hold_lease(u);
  ASSERT_TRUE(dequeue_job(u.c, u.name, token, running));
  auto before = hash(u.c, id);
  auto r = cancel_pending_job(u.c, id, u.name, {{"status", "cancelled"}}, 100);
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_FALSE(r->cancelled);
  EXPECT_EQ(r->status, "running");
  EXPECT_EQ(hash(u.c, id), before);
  EXPECT_EQ(ttl_of(u.c, keys::job(id)), -1);
  EXPECT_EQ(ids(wip_job_ids(u.c, u.name)), std::vector<std::string>{id});
}

TEST(RedisJobs, CancelPendingOfAnUnknownOrForeignJobIsNotFound) {
  scoped_user u{"rt_cancel_nf"};
  scoped_user other{"rt_cancel_o"};
  auto id = create(u);
  auto r = cancel_pending_job(other.c, id, other.name, {{"status", "cancelled"}}, 100);
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), ec::job_not_found));
  EXPECT_EQ(hash(u.c, id)["status"], "pending");
  auto r2 = cancel_pending_job(u.c, "no-such-job", u.name, {{"status", "cancelled"}}, 100);
  ASSERT_FALSE(r2);
  EXPECT_TRUE(is(r2.error(), ec::job_not_found));
}

TEST(RedisJobs, FencedWritesAreRefusedAfterTheLeaseMovedAndChangeNothing) {
  scoped_user u{"rt_fence"};
  auto j1 = create(u);
  auto j2 = create(u);
  auto old_token = random_token();
  ASSERT_TRUE(value_or(acquire_lease(u.c, u.name, old_token, 300ms), false));
  ASSERT_TRUE(dequeue_job(u.c, u.name, old_token, running));
  // The lease expires and another node takes it.
  std::this_thread::sleep_for(400ms);
  auto new_token = random_token();
  ASSERT_TRUE(value_or(acquire_lease(u.c, u.name, new_token, 10000ms), false));
  auto h1 = hash(u.c, j1);
  auto h2 = hash(u.c, j2);
  auto queue = ids(queued_job_ids(u.c, u.name));
  auto wip = ids(wip_job_ids(u.c, u.name));
  auto w = write_job(u.c, j1, u.name, old_token, {{"status", "done"}}, write_mode{true, 100, "", {}});
  ASSERT_FALSE(w);
  EXPECT_TRUE(is(w.error(), ec::lease_lost)) << message_of(w.error());
  auto d = dequeue_job(u.c, u.name, old_token, running);
  ASSERT_FALSE(d);
  EXPECT_TRUE(is(d.error(), ec::lease_lost));
  auto rq = requeue_job(u.c, j1, u.name, old_token, {{"status", "pending"}});
  ASSERT_FALSE(rq);
  EXPECT_TRUE(is(rq.error(), ec::lease_lost));
  auto rm = remove_from_wip(u.c, j1, u.name, old_token);
  ASSERT_FALSE(rm);
  EXPECT_TRUE(is(rm.error(), ec::lease_lost));
  EXPECT_EQ(hash(u.c, j1), h1);
  EXPECT_EQ(hash(u.c, j2), h2);
  EXPECT_EQ(ttl_of(u.c, keys::job(j1)), -1);
  EXPECT_EQ(ids(queued_job_ids(u.c, u.name)), queue);
  EXPECT_EQ(ids(wip_job_ids(u.c, u.name)), wip);
  // The new holder can write.
  EXPECT_TRUE(write_job(u.c, j1, u.name, new_token, {{"status", "done"}}, write_mode{true, 100, "", {}}));
}

TEST(RedisJobs, RoundTripsAreOnePerCreateDequeueStatusWriteRequeueAndCancel) {
  scoped_user u{"rt_cost"};
  auto token = hold_lease(u);
  ASSERT_FALSE(u.c.ensure_connected());
  // Measures one operation; repeats it if another test process flushed the
  // script cache meanwhile (then EVALSHA costs one extra NOSCRIPT round trip).
  auto cost = [&](const std::function<bool()>& op) -> uint64_t {
    for (int attempt = 0;; ++attempt) {
      auto fallbacks = u.c.noscript_fallbacks();
      auto before = u.c.round_trips();
      EXPECT_TRUE(op());
      if (u.c.noscript_fallbacks() == fallbacks || attempt == 3)
        return u.c.round_trips() - before;
    }
  };
  std::string id;
  EXPECT_EQ(cost([&] {
              id = u.new_job_id();
              return static_cast<bool>(create_job(u.c, id, u.name, pending_job(u.name), 64));
            }),
            1u);
  std::string dequeued;
  EXPECT_EQ(cost([&] {
              auto d = dequeue_job(u.c, u.name, token, running);
              if (d && *d)
                dequeued = (*d)->job_id;
              return d && *d;
            }),
            1u);
  EXPECT_EQ(cost([&] {
              return static_cast<bool>(
                write_job(u.c, dequeued, u.name, token, {{"status", "running"}}, write_mode{}));
            }),
            1u);
  EXPECT_EQ(cost([&] {
              return static_cast<bool>(
                requeue_job(u.c, dequeued, u.name, token, {{"status", "pending"}}));
            }),
            1u);
  EXPECT_EQ(cost([&] {
              auto r = cancel_pending_job(u.c, dequeued, u.name, {{"status", "cancelled"}}, 100);
              return r && r->cancelled;
            }),
            1u);
  EXPECT_EQ(cost([&] { return static_cast<bool>(renew_lease(u.c, u.name, token, 5000ms)); }),
            1u);
  auto host = batchq::test::unique_name("rt_cost_host");
  auto slot = random_token();
  EXPECT_EQ(cost([&] { return value_or(acquire_capacity(u.c, host, 4, slot, 5000ms), false); }),
            1u);
  EXPECT_EQ(cost([&] { return value_or(release_capacity(u.c, host, slot), false); }), 1u);
}

TEST(RedisJobs, ReadJobOfAMissingJobIsNullopt) {
  client c{test_endpoint()};
  auto r = read_job(c, "no-such-job-" + random_token());
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_FALSE(*r);
}

TEST(RedisJobs, RebuildIndexFindsQueuesMissingFromTheIndex) {
  scoped_user u{"rt_rebuild"};
  create(u);
  must(u.c, {"SREM", index_key, u.name});
  auto users = rebuild_queue_index(u.c);
  ASSERT_TRUE(users) << message_of(users.error());
  EXPECT_NE(std::find(users->begin(), users->end(), u.name), users->end());
  EXPECT_TRUE(is_member(u.c, index_key, u.name));
  auto indexed = ids(queued_users(u.c));
  EXPECT_NE(std::find(indexed.begin(), indexed.end(), u.name), indexed.end());
}

TEST(RedisJobs, ScanKeysFindsEveryMatchingKeyOnceOverSeveralRoundTripsAndFiltersByType) {
  client c{test_endpoint()};
  ASSERT_FALSE(c.ensure_connected());
  // 2500 strings and one list under a prefix of their own: several SCAN pages.
  auto prefix = batchq::test::unique_name("rt_scan") + ":";
  std::vector<std::vector<std::string>> sets;
  std::vector<std::string> want;
  for (int i = 0; i < 2500; ++i) {
    want.push_back(prefix + std::to_string(i));
    sets.push_back({"SET", want.back(), "x"});
  }
  auto list_key = prefix + "list";
  want.push_back(list_key);
  sets.push_back({"RPUSH", list_key, "x"});
  ASSERT_TRUE(c.pipeline(sets));
  std::sort(want.begin(), want.end());

  auto before = c.round_trips();
  auto all = scan_keys(c, keys::escape_glob(prefix) + "*");
  auto trips = c.round_trips() - before;
  auto lists = scan_keys(c, keys::escape_glob(prefix) + "*", "list");
  std::vector<std::string> del{"DEL"};
  del.insert(del.end(), want.begin(), want.end());
  must(c, del);

  ASSERT_TRUE(all) << message_of(all.error());
  EXPECT_EQ(*all, want);
  EXPECT_GT(trips, 1u) << "one SCAN page cannot hold 2501 keys at COUNT 1000";
  ASSERT_TRUE(lists) << message_of(lists.error());
  EXPECT_EQ(*lists, std::vector<std::string>{list_key});
}

TEST(RedisJobs, RemoveFromWipDropsAnOrphanedEntryWhoseHashIsGone) {
  scoped_user u{"rt_orphan"};
  auto id = create(u);
  auto token = hold_lease(u);
  ASSERT_TRUE(dequeue_job(u.c, u.name, token, running));
  must(u.c, {"DEL", keys::job(id)});
  auto w = write_job(u.c, id, u.name, token, {{"status", "failed"}}, write_mode{true, 100, "", {}});
  ASSERT_FALSE(w);
  EXPECT_TRUE(is(w.error(), ec::job_not_found));
  EXPECT_EQ(must(u.c, {"EXISTS", keys::job(id)}).integer, 0); // no partial hash
  auto n = remove_from_wip(u.c, id, u.name, token);
  ASSERT_TRUE(n) << message_of(n.error());
  EXPECT_EQ(*n, 1);
  EXPECT_FALSE(is_member(u.c, wip_users_key, u.name));
}

TEST(RedisJobs, StatusWriteAndRequeueDeleteTheFieldsTheJobNoLongerHas) {
  scoped_user u{"rt_del"};
  auto id = create(u);
  auto token = hold_lease(u);
  ASSERT_TRUE(dequeue_job(u.c, u.name, token, running));
  ASSERT_TRUE(write_job(u.c, id, u.name, token, {{"step_started_at", "t1"}, {"failed_reason", "x"}},
                        write_mode{}));
  write_mode mode;
  mode.remove_fields = {"failed_reason"};
  ASSERT_TRUE(write_job(u.c, id, u.name, token, {{"node", "n1"}}, mode));
  auto h = hash(u.c, id);
  EXPECT_EQ(h.count("failed_reason"), 0u);
  EXPECT_EQ(h["node"], "n1");
  EXPECT_EQ(h["step_started_at"], "t1");

  auto len = requeue_job(u.c, id, u.name, token, {{"status", "pending"}}, {"step_started_at"});
  ASSERT_TRUE(len) << message_of(len.error());
  h = hash(u.c, id);
  EXPECT_EQ(h.count("step_started_at"), 0u);
  EXPECT_EQ(h["status"], "pending");
}
