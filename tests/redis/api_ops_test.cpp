// src/redis/ops: what the HTTP API adds to the job path (SPEC §8) against the
// real Redis: the per-user job index and its pages (job_list), and the
// Idempotency-Key inside the create script (job_create).
#include "src/redis/ops.hpp"

#include <algorithm>
#include <chrono>
#include <functional>

#include <gtest/gtest.h>

#include "tests/redis/redis_test_support.hpp"

using namespace std::chrono_literals;
using batchq::ec;
using batchq::is;
using batchq::message_of;
using namespace batchq::redis;
using batchq::redis::test::must;
using batchq::redis::test::pending_job;
using batchq::redis::test::scoped_user;

namespace {

/// Creates a job at `ms` (its place in the index) with `status`.
std::string create_at(scoped_user& u, int64_t ms, const std::string& status = "pending") {
  auto id = u.new_job_id();
  auto fields = pending_job(u.name);
  create_options opts;
  opts.created_ms = ms;
  auto r = create_job(u.c, id, u.name, fields, opts);
  EXPECT_TRUE(r) << message_of(r.error());
  if (status != "pending")
    must(u.c, {"HSET", keys::job(id), "status", status});
  return id;
}

std::vector<std::string> ids_of(const job_page& p) {
  std::vector<std::string> out;
  for (const auto& [id, hash] : p.jobs)
    out.push_back(id);
  return out;
}

struct cleanup_key {
  client& c;
  std::string key;
  ~cleanup_key() { c.command({"DEL", key}); }
};

} // namespace

TEST(RedisApiOps, CreateIndexesTheJobAndListReturnsTheNewestFirstWithHashes) {
  scoped_user u{"api_list"};
  auto a = create_at(u, 1000);
  auto b = create_at(u, 2000);
  auto c = create_at(u, 3000);
  EXPECT_EQ(must(u.c, {"ZCARD", keys::user_jobs(u.name)}).integer, 3);
  auto page = list_jobs(u.c, u.name, 20, "", {});
  ASSERT_TRUE(page) << message_of(page.error());
  EXPECT_EQ(ids_of(*page), (std::vector<std::string>{c, b, a}));
  EXPECT_FALSE(page->next);
  EXPECT_EQ(page->jobs[0].second.at("user"), u.name);
  EXPECT_EQ(page->jobs[0].second.at("status"), "pending");
}

TEST(RedisApiOps, PagesFollowTheCursorToTheEndWithoutRepeatsOrGaps) {
  scoped_user u{"api_pages"};
  std::vector<std::string> created;
  for (int i = 0; i < 7; ++i)
    created.push_back(create_at(u, 5000)); // one millisecond: creation order still holds
  std::vector<std::string> seen;
  std::string cursor;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = list_jobs(u.c, u.name, 3, cursor, {});
    ASSERT_TRUE(page) << message_of(page.error());
    for (auto& id : ids_of(*page))
      seen.push_back(id);
    if (!page->next)
      break;
    cursor = *page->next;
  }
  std::reverse(created.begin(), created.end());
  EXPECT_EQ(seen, created) << "newest first, each job once";
}

TEST(RedisApiOps, AJobFromASlowerClockStillListsAsTheNewest) {
  scoped_user u{"api_clock"};
  auto first = create_at(u, 9000);
  auto second = create_at(u, 1000); // another API node whose clock is behind
  auto page = list_jobs(u.c, u.name, 20, "", {});
  ASSERT_TRUE(page);
  EXPECT_EQ(ids_of(*page), (std::vector<std::string>{second, first}));
}

TEST(RedisApiOps, AFullLastPageHasNoNextCursor) {
  scoped_user u{"api_full"};
  create_at(u, 1000);
  create_at(u, 2000);
  auto page = list_jobs(u.c, u.name, 2, "", {});
  ASSERT_TRUE(page);
  EXPECT_EQ(page->jobs.size(), 2u);
  EXPECT_FALSE(page->next);
}

TEST(RedisApiOps, TheStatusFilterKeepsOnlyTheWantedStatuses) {
  scoped_user u{"api_filter"};
  auto a = create_at(u, 1000, "done");
  create_at(u, 2000, "pending");
  auto c = create_at(u, 3000, "failed");
  create_at(u, 4000, "running");
  auto page = list_jobs(u.c, u.name, 20, "", {"done", "failed"});
  ASSERT_TRUE(page);
  EXPECT_EQ(ids_of(*page), (std::vector<std::string>{c, a}));
  EXPECT_FALSE(page->next);
}

TEST(RedisApiOps, TheBudgetEndsAShortPageWithACursorThatGoesOn) {
  scoped_user u{"api_budget"};
  auto old = create_at(u, 1000, "done");
  for (int i = 0; i < 5; ++i)
    create_at(u, 2000 + i, "pending");
  auto first = list_jobs(u.c, u.name, 10, "", {"done"}, 3);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->jobs.empty());
  ASSERT_TRUE(first->next);
  auto second = list_jobs(u.c, u.name, 10, *first->next, {"done"}, 3);
  ASSERT_TRUE(second);
  EXPECT_EQ(ids_of(*second), (std::vector<std::string>{old}));
}

TEST(RedisApiOps, ListDropsIndexEntriesWhoseJobExpired) {
  scoped_user u{"api_dead"};
  auto a = create_at(u, 1000);
  auto gone = create_at(u, 2000);
  must(u.c, {"DEL", keys::job(gone)});
  auto page = list_jobs(u.c, u.name, 20, "", {});
  ASSERT_TRUE(page);
  EXPECT_EQ(ids_of(*page), (std::vector<std::string>{a}));
  EXPECT_EQ(must(u.c, {"ZCARD", keys::user_jobs(u.name)}).integer, 1);
}

TEST(RedisApiOps, CreatePrunesIndexEntriesWhoseJobExpired) {
  scoped_user u{"api_prune"};
  auto gone = create_at(u, 1000);
  must(u.c, {"DEL", keys::job(gone)});
  // With at most 3 entries the random sample is the whole index.
  create_at(u, 2000);
  EXPECT_EQ(must(u.c, {"ZCARD", keys::user_jobs(u.name)}).integer, 1);
}

TEST(RedisApiOps, ARepeatedIdempotencyKeyReturnsTheOriginalJobAndCreatesNothing) {
  scoped_user u{"api_idem"};
  cleanup_key k{u.c, keys::idempotency(u.name, "key-1")};
  create_options opts;
  opts.max_queued = 1;
  opts.idempotency_key = "key-1";
  auto first_id = u.new_job_id();
  auto first = create_job(u.c, first_id, u.name, pending_job(u.name), opts);
  ASSERT_TRUE(first) << message_of(first.error());
  EXPECT_TRUE(first->created);
  EXPECT_EQ(first->job_id, first_id);
  auto ttl = must(u.c, {"TTL", k.key}).integer;
  EXPECT_GT(ttl, 86000);
  EXPECT_LE(ttl, 86400);

  // The queue is now full (max 1): the repeat still answers with the original.
  auto second_id = u.new_job_id();
  auto second = create_job(u.c, second_id, u.name, pending_job(u.name), opts);
  ASSERT_TRUE(second) << message_of(second.error());
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->job_id, first_id);
  ASSERT_TRUE(second->original);
  EXPECT_EQ(second->original->at("status"), "pending");
  EXPECT_EQ(must(u.c, {"EXISTS", keys::job(second_id)}).integer, 0);
  EXPECT_EQ(must(u.c, {"LLEN", keys::queue(u.name)}).integer, 1);
  EXPECT_EQ(must(u.c, {"ZCARD", keys::user_jobs(u.name)}).integer, 1);

  // Another key is a new create, refused by the full queue; nothing is kept
  // for that key.
  cleanup_key k2{u.c, keys::idempotency(u.name, "key-2")};
  opts.idempotency_key = "key-2";
  auto third = create_job(u.c, u.new_job_id(), u.name, pending_job(u.name), opts);
  ASSERT_FALSE(third);
  EXPECT_TRUE(is(third.error(), ec::queue_full)) << message_of(third.error());
  EXPECT_EQ(must(u.c, {"EXISTS", k2.key}).integer, 0);
}

TEST(RedisApiOps, ARepeatedKeyWhoseJobExpiredReportsNoOriginalHash) {
  scoped_user u{"api_idem_gone"};
  cleanup_key k{u.c, keys::idempotency(u.name, "k")};
  create_options opts;
  opts.idempotency_key = "k";
  auto id = u.new_job_id();
  ASSERT_TRUE(create_job(u.c, id, u.name, pending_job(u.name), opts));
  must(u.c, {"DEL", keys::job(id)});
  auto again = create_job(u.c, u.new_job_id(), u.name, pending_job(u.name), opts);
  ASSERT_TRUE(again) << message_of(again.error());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->job_id, id);
  EXPECT_FALSE(again->original);
}

TEST(RedisApiOps, CreateWithOptionsAndListCostOneRoundTripEach) {
  scoped_user u{"api_cost"};
  cleanup_key k{u.c, keys::idempotency(u.name, "cost")};
  ASSERT_FALSE(u.c.ensure_connected());
  create_options opts;
  opts.idempotency_key = "cost";
  // A concurrent SCRIPT FLUSH by another test process costs one NOSCRIPT
  // round trip: measure again then.
  auto cost = [&](const std::function<bool()>& op) -> uint64_t {
    for (int attempt = 0;; ++attempt) {
      auto fallbacks = u.c.noscript_fallbacks();
      auto before = u.c.round_trips();
      EXPECT_TRUE(op());
      if (u.c.noscript_fallbacks() == fallbacks || attempt == 3)
        return u.c.round_trips() - before;
    }
  };
  EXPECT_EQ(cost([&] {
              return static_cast<bool>(
                create_job(u.c, u.new_job_id(), u.name, pending_job(u.name), opts));
            }),
            1u);
  EXPECT_EQ(cost([&] { return static_cast<bool>(list_jobs(u.c, u.name, 20, "", {})); }), 1u);
}
