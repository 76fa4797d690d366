// src/redis/ops: job operations against the real Redis (SPEC §4, §5, §7).
#include "src/redis/ops.hpp"
#include "src/redis/turns.hpp"

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

/// Claims the user's next job in a turn of `token` (turn.lua), as a worker
/// does; the job id, or "" when nothing was claimed.
std::string claim(scoped_user& u, const std::string& token) {
  turn_args a;
  a.user = u.name;
  a.token = token;
  a.host = "rt-host-" + u.name;
  a.slot = token;
  a.ttl = 10000ms;
  a.part = turn_part::next;
  a.claim = {{"status", "running"}, {"node", "node-a"}};
  auto r = turn_step(u.c, a);
  EXPECT_TRUE(r) << message_of(r.error());
  u.c.command({"DEL", keys::capacity(a.host)});
  if (!r || r->what != turn_reply::outcome::job)
    return {};
  return r->jobs.front().job_id;
}

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
  // Each claim by a fresh turn (the earlier claims are orphans then, so take
  // them out of work in progress as their turns would).
  for (const auto& expected : {a, b, c}) {
    auto token = random_token();
    EXPECT_EQ(claim(u, token), expected);
    must(u.c, {"DEL", keys::wip_user(u.name), keys::lock_user(u.name)});
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

TEST(RedisJobs, CancelPendingCancelsAQueuedJob) {
  scoped_user u{"rt_cancel"};
  auto id = create(u);
  // Rows an earlier, requeued run kept go with the hash.
  u.c.command({"RPUSH", keys::results(id), R"(["1"])"});
  auto sub = subscription::open(test_endpoint(), {std::string{keys::jobs_final_channel}});
  ASSERT_TRUE(sub) << message_of(sub.error());
  auto r = cancel_pending_job(u.c, id, u.name, {{"status", "cancelled"}}, 100);
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_TRUE(r->cancelled);
  // The API's long-polls on the job hear it (other tests publish here too).
  bool heard = false;
  for (int i = 0; i < 50 && !heard; ++i) {
    auto m = (*sub)->next(200ms);
    heard = m && *m && (*m)->payload == id;
  }
  EXPECT_TRUE(heard) << "the cancel was not published on " << keys::jobs_final_channel;
  EXPECT_EQ(hash(u.c, id)["status"], "cancelled");
  EXPECT_TRUE(ids(queued_job_ids(u.c, u.name)).empty());
  EXPECT_FALSE(is_member(u.c, index_key, u.name));
  auto ttl = ttl_of(u.c, keys::job(id));
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 100);
  auto rows_ttl = ttl_of(u.c, keys::results(id));
  u.c.command({"DEL", keys::results(id)});
  EXPECT_GT(rows_ttl, 0);
  EXPECT_LE(rows_ttl, 100);
}

TEST(RedisJobs, CancelPendingOfARunningJobReportsItsStatusAndChangesNothing) {
  scoped_user u{"rt_cancel_run"};
  auto id = create(u);
  ASSERT_EQ(claim(u, random_token()), id);
  auto before = hash(u.c, id);
  auto r = cancel_pending_job(u.c, id, u.name, {{"status", "cancelled"}}, 100);
  ASSERT_TRUE(r) << message_of(r.error());
  EXPECT_FALSE(r->cancelled);
  EXPECT_EQ(r->status, "running");
  EXPECT_EQ(hash(u.c, id), before);
  auto mark = u.c.command({"EXISTS", keys::cancel_mark(id)});
  ASSERT_TRUE(mark);
  EXPECT_EQ(mark->integer, 1) << "only the cancel mark is written";
  u.c.command({"DEL", keys::cancel_mark(id)});
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


TEST(RedisKeys, GlobCharactersInAUserNameMatchLiterally) {
  EXPECT_EQ(keys::escape_glob("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
}
