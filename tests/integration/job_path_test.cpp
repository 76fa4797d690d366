// The path of one job through the three foundation layers, without actors:
// request body -> src/job (parse, make_job, encode) -> src/redis (create,
// lease, dequeue, fenced writes) -> src/pg (execute) -> src/job (apply) ->
// src/redis (final write with TTL). It proves that the layers fit and counts
// the round trips that docs/round-trips.md quotes. Real Redis (DB 5, SPEC §4)
// and real PostgreSQL; every test uses its own user.
#include <chrono>

#include <gtest/gtest.h>

#include "src/job/parse.hpp"
#include "src/job/progress.hpp"
#include "src/job/record.hpp"
#include "src/job/response.hpp"
#include "src/pg/pool.hpp"
#include "src/redis/client.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"
#include "tests/support/test_env.hpp"

using namespace batchq;
using namespace std::chrono_literals;

namespace {

constexpr int64_t ttl_seconds = 7200;
constexpr int64_t cap_ms = 43200000;

struct job_path : ::testing::Test {
  redis::client rc{redis::endpoint{"127.0.0.1", static_cast<uint16_t>(test::redis_port()), 5}};
  pg::pool pool;
  std::string user = test::unique_name("path");
  std::string token = redis::random_token();
  std::vector<std::string> job_ids;

  ~job_path() override {
    std::vector<std::string> del{"DEL", redis::keys::queue(user), redis::keys::wip_user(user),
                                 redis::keys::lock_user(user)};
    for (const auto& id : job_ids)
      del.push_back(redis::keys::job(id));
    rc.command(del);
    rc.command({"SREM", std::string{redis::keys::queue_index}, user});
    rc.command({"SREM", std::string{redis::keys::wip_users}, user});
  }

  job::db_target db() const {
    return {"127.0.0.1", std::to_string(test::pg_port()), "postgres", "postgres", std::nullopt};
  }

  // Parses `body`, creates the job in Redis, returns its id.
  std::string submit(const std::string& body) {
    auto req = job::parse_request(body, "application/json", "");
    EXPECT_TRUE(req) << (req ? "" : req.error().message);
    auto id = redis::random_token();
    job_ids.push_back(id);
    auto j = job::make_job(*req, id, user, db(), std::chrono::system_clock::now());
    auto created = redis::create_job(rc, id, user, job::encode(j), 64);
    EXPECT_TRUE(created) << message_of(created.error());
    return id;
  }

  redis::field_list as_fields(const job::record& r) { return {r.begin(), r.end()}; }

  // One fenced status write of the job's mutable fields.
  void write(const job::job& j) {
    auto upd = job::state_fields(j);
    redis::write_mode mode;
    mode.final = job::is_final(j.status);
    mode.ttl_seconds = ttl_seconds;
    mode.remove_fields = upd.del;
    auto w = redis::write_job(rc, j.job_id, user, token, as_fields(upd.set), mode);
    ASSERT_TRUE(w) << message_of(w.error());
  }

  // Dequeues the user's next job and decodes it.
  std::optional<job::job> dequeue() {
    auto d = redis::dequeue_job(rc, user, token);
    EXPECT_TRUE(d) << message_of(d.error());
    if (!d || !*d)
      return std::nullopt;
    job::record rec((*d)->fields.begin(), (*d)->fields.end());
    auto j = job::decode((*d)->job_id, rec);
    EXPECT_TRUE(j) << (j ? "" : j.error().message);
    return j ? std::optional<job::job>{*j} : std::nullopt;
  }

  // The job-runner's loop, on one pooled connection. Returns PostgreSQL round trips.
  uint64_t run(job::job& j) {
    pg::pool_key key{"127.0.0.1", static_cast<uint16_t>(test::pg_port()), "postgres", "postgres"};
    auto conn = pool.acquire(key, "");
    EXPECT_TRUE(conn) << message_of(conn.error());
    auto before = (*conn)->round_trips();
    while (auto st = job::next_statement(j, cap_ms)) {
      EXPECT_TRUE(job::begin(j, *st, std::chrono::system_clock::now()));
      write(j);
      auto r = (*conn)->execute(j.job_id, st->sql, st->timeout_ms);
      EXPECT_TRUE(r) << message_of(r.error());
      auto o = r->ok() ? job::outcome::success() : job::outcome::failure(r->error.message);
      EXPECT_TRUE(job::apply(j, *st, o, std::chrono::system_clock::now()));
      write(j);
    }
    return (*conn)->round_trips() - before;
  }

  redis::field_map hash(const std::string& id) {
    auto r = redis::read_job(rc, id);
    EXPECT_TRUE(r) << message_of(r.error());
    return r && *r ? **r : redis::field_map{};
  }
};

} // namespace

TEST_F(job_path, ASimpleJobRunsToDoneWithOneRoundTripPerRedisOperation) {
  auto id = submit(R"({"query": "select 1"})");
  ASSERT_TRUE(*redis::acquire_lease(rc, user, token, 5000ms));

  auto rt = rc.round_trips();
  auto j = dequeue();
  ASSERT_TRUE(j);
  EXPECT_EQ(rc.round_trips() - rt, 1u) << "dequeue + read is one script";

  rt = rc.round_trips();
  auto pg_round_trips = run(*j);
  EXPECT_EQ(rc.round_trips() - rt, 2u) << "one write when the statement starts, one when it ends";
  EXPECT_LE(pg_round_trips, 2u) << "SET statement_timeout (first use of the connection) + the query";

  auto h = hash(id);
  EXPECT_EQ(h["status"], "done");
  EXPECT_EQ(h["user"], user);
  EXPECT_EQ(h["query"], "select 1");
  EXPECT_EQ(h.count("pass"), 0u);
  auto ttl = rc.command({"TTL", redis::keys::job(id)});
  ASSERT_TRUE(ttl);
  EXPECT_GT(ttl->integer, 7000);
  auto wip = rc.command({"LLEN", redis::keys::wip_user(user)});
  EXPECT_EQ(wip->integer, 0);

  // The same connection again: the timeout is unchanged, so one PostgreSQL round trip.
  auto id2 = submit(R"({"query": "select 2"})");
  auto j2 = dequeue();
  ASSERT_TRUE(j2);
  EXPECT_EQ(j2->job_id, id2);
  EXPECT_EQ(run(*j2), 1u);
}

TEST_F(job_path, AFailingStepRunsItsOnerrorWithTheQuotedMessageAndSkipsTheRest) {
  ASSERT_TRUE(*redis::acquire_lease(rc, user, token, 5000ms));
  auto table = test::unique_name("errlog");
  pg::pool_key key{"127.0.0.1", static_cast<uint16_t>(test::pg_port()), "postgres", "postgres"};
  {
    auto conn = pool.acquire(key, "");
    ASSERT_TRUE(conn);
    ASSERT_TRUE((*conn)->execute("setup", "CREATE TABLE " + table + " (job text, msg text)", 0));
  }
  auto id = submit(R"j({"query": [
      {"query": "select * from nonexistent_table", "onerror": "INSERT INTO )j" + table +
                   R"j( VALUES ('<%= job_id %>', '<%= error_message %>')"},
      "select 2"]})j");
  auto j = dequeue();
  ASSERT_TRUE(j);
  run(*j);

  auto h = hash(id);
  EXPECT_EQ(h["status"], "failed");
  EXPECT_EQ(h["failed_reason"], "relation \"nonexistent_table\" does not exist");
  auto decoded = job::decode(id, job::record(h.begin(), h.end()));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->steps[0].status, job::status::failed);
  EXPECT_EQ(decoded->steps[0].fallback_status, job::status::done);
  EXPECT_EQ(decoded->steps[1].status, job::status::skipped);

  auto conn = pool.acquire(key, "");
  ASSERT_TRUE(conn);
  auto msg = (*conn)->query_value("SELECT msg FROM " + table + " WHERE job = $1", {id});
  ASSERT_TRUE(msg) << message_of(msg.error());
  ASSERT_TRUE(*msg);
  EXPECT_EQ(**msg, "relation \"nonexistent_table\" does not exist") << "the quote-doubled "
                                                                       "message is a safe literal";
  (*conn)->execute("cleanup", "DROP TABLE " + table, 0);
}

TEST_F(job_path, ADrainedJobGoesBackToTheHeadOfItsQueueAndResumesAtTheInterruptedStep) {
  ASSERT_TRUE(*redis::acquire_lease(rc, user, token, 5000ms));
  auto first = submit(R"({"query": ["select 1", "select 2"]})");
  auto second = submit(R"({"query": "select 3"})");
  auto j = dequeue();
  ASSERT_TRUE(j);
  ASSERT_EQ(j->job_id, first);

  // Step 0 done, step 1 started when the node is told to stop.
  auto now = std::chrono::system_clock::now();
  auto st = job::next_statement(*j, cap_ms);
  ASSERT_TRUE(job::begin(*j, *st, now));
  ASSERT_TRUE(job::apply(*j, *st, job::outcome::success(), now));
  st = job::next_statement(*j, cap_ms);
  ASSERT_TRUE(job::begin(*j, *st, now));
  write(*j);
  ASSERT_TRUE(job::drain(*j, now));
  ASSERT_EQ(j->status, job::status::pending);
  auto upd = job::state_fields(*j);
  auto len = redis::requeue_job(rc, first, user, token, as_fields(upd.set), upd.del);
  ASSERT_TRUE(len) << message_of(len.error());

  auto again = dequeue();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job_id, first) << "the drained job runs before the user's later job";
  EXPECT_EQ(again->steps[0].status, job::status::done);
  EXPECT_EQ(again->steps[1].status, job::status::pending);
  EXPECT_FALSE(again->steps[1].started_at) << "the interrupted step's start was removed";
  auto next = job::next_statement(*again, cap_ms);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->step, 1u) << "finished steps are not run again";
  run(*again);
  EXPECT_EQ(hash(first)["status"], "done");
  auto later = dequeue();
  ASSERT_TRUE(later);
  EXPECT_EQ(later->job_id, second);
}

TEST_F(job_path, AWriteByANodeThatLostTheLeaseChangesNothing) {
  auto id = submit(R"({"query": "select 1"})");
  ASSERT_TRUE(*redis::acquire_lease(rc, user, token, 5000ms));
  auto j = dequeue();
  ASSERT_TRUE(j);
  auto st = job::next_statement(*j, cap_ms);
  ASSERT_TRUE(job::begin(*j, *st, std::chrono::system_clock::now()));
  write(*j);
  // Another node takes over the lease.
  ASSERT_TRUE(*redis::release_lease(rc, user, token));
  auto other = redis::random_token();
  ASSERT_TRUE(*redis::acquire_lease(rc, user, other, 5000ms));
  ASSERT_TRUE(job::apply(*j, *st, job::outcome::success(), std::chrono::system_clock::now()));
  auto upd = job::state_fields(*j);
  redis::write_mode mode;
  mode.final = true;
  auto w = redis::write_job(rc, id, user, token, as_fields(upd.set), mode);
  ASSERT_FALSE(w);
  EXPECT_TRUE(is(w.error(), ec::lease_lost));
  EXPECT_EQ(hash(id)["status"], "running");
}
