// The path of one job through the three foundation layers, without actors:
// request body -> src/job (parse, make_job, encode) -> src/redis (create; the
// turn script: lease + capacity slot + claim, fenced progress writes) -> src/pg
// (execute) -> src/job (apply) -> src/redis (the final write with its TTL,
// together with the claim of the user's next job or the release of the turn).
// It proves that the layers fit and counts the round trips that
// docs/round-trips.md quotes: ONE Redis round trip per turn step. Real Redis
// (DB 5, SPEC §4) and real PostgreSQL; every test uses its own user and
// capacity bucket.
#include <chrono>
#include <optional>

#include <gtest/gtest.h>

#include "src/job/parse.hpp"
#include "src/job/progress.hpp"
#include "src/job/record.hpp"
#include "src/job/response.hpp"
#include "src/pg/pool.hpp"
#include "src/redis/client.hpp"
#include "src/redis/keys.hpp"
#include "src/redis/ops.hpp"
#include "src/redis/turns.hpp"
#include "tests/support/test_env.hpp"

using namespace batchq;
using namespace std::chrono_literals;
using outcome = batchq::redis::turn_reply::outcome;
using written = batchq::redis::turn_reply::written;
using batchq::redis::turn_part;
using batchq::redis::write_kind;

namespace {

constexpr int64_t ttl_seconds = 7200;
constexpr int64_t cap_ms = 43200000;
constexpr const char* node = "path-node";

struct job_path : ::testing::Test {
  redis::client rc{redis::endpoint{"127.0.0.1", static_cast<uint16_t>(test::redis_port()), 5}};
  pg::pool pool;
  std::string user = test::unique_name("path");
  /// The user's capacity bucket (its database host), private to the test.
  std::string host = test::unique_name("pathhost");
  /// The lease token of the current turn (a new turn takes a new one).
  std::string token = redis::random_token();
  std::vector<std::string> job_ids;

  ~job_path() override {
    std::vector<std::string> del{"DEL", redis::keys::queue(user), redis::keys::wip_user(user),
                                 redis::keys::lock_user(user), redis::keys::capacity(host)};
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

  /// Round trips of `f()` on rc, without the extra one of an EVALSHA that hit
  /// NOSCRIPT (another test process may SCRIPT FLUSH at any time).
  template <class F>
  uint64_t cost(F f) {
    auto before = rc.round_trips();
    auto fallbacks = rc.noscript_fallbacks();
    f();
    return rc.round_trips() - before - (rc.noscript_fallbacks() - fallbacks);
  }

  /// A turn step of the current turn (`token`), without a write.
  redis::turn_args turn(turn_part part) const {
    redis::turn_args a;
    a.user = user;
    a.token = token;
    a.host = host;
    a.slot = "slot-" + token;
    a.capacity = 4;
    a.ttl = 5000ms;
    a.part = part;
    a.claim = {{"status", "running"}, {"node", node}, {"updated_at", redis::iso8601_now()}};
    return a;
  }

  redis::turn_reply step(const redis::turn_args& a) {
    auto r = redis::turn_step(rc, a);
    EXPECT_TRUE(r) << message_of(r.error());
    return r ? *r : redis::turn_reply{};
  }

  /// The write of `j`'s mutable fields, compare-and-set on running + `claim`.
  redis::turn_write write_of(const job::job& j, write_kind kind, const std::string& claim) {
    auto upd = job::state_fields(j);
    redis::turn_write w;
    w.job_id = j.job_id;
    w.expected_status = "running";
    w.expected_claim = claim;
    w.to_status = job::to_string(j.status);
    w.kind = kind;
    w.ttl_seconds = ttl_seconds;
    w.set = {upd.set.begin(), upd.set.end()};
    w.del = upd.del;
    return w;
  }

  /// The job claimed by `r` (decoded), if any.
  std::optional<job::job> claimed(const redis::turn_reply& r) {
    EXPECT_EQ(r.what, outcome::job) << redis::to_string(r.what);
    if (r.what != outcome::job || r.jobs.empty())
      return std::nullopt;
    job::record rec(r.jobs[0].fields.begin(), r.jobs[0].fields.end());
    auto j = job::decode(r.jobs[0].job_id, rec);
    EXPECT_TRUE(j) << (j ? "" : j.error().message);
    return j ? std::optional<job::job>{*j} : std::nullopt;
  }

  /// A progress write of the current turn's job (part none: one round trip).
  void progress(const job::job& j) {
    auto a = turn(turn_part::none);
    a.write = write_of(j, write_kind::progress, token);
    auto r = step(a);
    EXPECT_EQ(r.write, written::yes);
    EXPECT_EQ(r.what, outcome::none);
  }

  /// The final write of `j` together with the turn part `part`.
  redis::turn_reply finish(const job::job& j, turn_part part) {
    EXPECT_TRUE(job::is_final(j.status));
    auto a = turn(part);
    a.write = write_of(j, write_kind::final, token);
    return step(a);
  }

  // The job-runner's loop, on one pooled connection: a progress write when a
  // statement starts and when it ends with the job still running; the final
  // state is left to the caller's turn step. Returns PostgreSQL round trips.
  uint64_t run(job::job& j) {
    pg::pool_key key{"127.0.0.1", static_cast<uint16_t>(test::pg_port()), "postgres", "postgres"};
    auto conn = pool.acquire(key, "");
    EXPECT_TRUE(conn) << message_of(conn.error());
    auto before = (*conn)->round_trips();
    while (auto st = job::next_statement(j, cap_ms)) {
      EXPECT_TRUE(job::begin(j, *st, std::chrono::system_clock::now()));
      progress(j);
      auto r = (*conn)->execute(j.job_id, st->sql, st->timeout_ms);
      EXPECT_TRUE(r) << message_of(r.error());
      auto o = r->ok() ? job::outcome::success() : job::outcome::failure(r->error.message);
      EXPECT_TRUE(job::apply(j, *st, o, std::chrono::system_clock::now()));
      if (!job::is_final(j.status))
        progress(j);
    }
    return (*conn)->round_trips() - before;
  }

  redis::field_map hash(const std::string& id) {
    auto r = redis::read_job(rc, id);
    EXPECT_TRUE(r) << message_of(r.error());
    return r && *r ? **r : redis::field_map{};
  }

  int64_t integer(const std::vector<std::string>& cmd) {
    auto r = rc.command(cmd);
    EXPECT_TRUE(r) << message_of(r.error());
    return r ? r->integer : -99;
  }

  std::optional<std::string> holder() {
    auto h = redis::lease_holder(rc, user);
    EXPECT_TRUE(h) << message_of(h.error());
    return h ? *h : std::nullopt;
  }
};

} // namespace

TEST_F(job_path, ATurnRunsTwoSimpleJobsToDoneWithOneRedisRoundTripPerTurnStep) {
  auto first = submit(R"({"query": "select 1"})");
  auto second = submit(R"({"query": "select 2"})");

  redis::turn_reply r;
  EXPECT_EQ(cost([&] { r = step(turn(turn_part::next)); }), 1u)
    << "lease + capacity slot + claim + read is one script";
  auto j = claimed(r);
  ASSERT_TRUE(j);
  ASSERT_EQ(j->job_id, first) << "the oldest job first";
  EXPECT_EQ(j->status, job::status::running);
  EXPECT_EQ(holder(), token);
  EXPECT_EQ(integer({"ZCARD", redis::keys::capacity(host)}), 1);

  uint64_t pg_round_trips = 0;
  EXPECT_EQ(cost([&] { pg_round_trips = run(*j); }), 1u)
    << "one progress write when the statement starts; its end is the final write";
  EXPECT_LE(pg_round_trips, 2u) << "SET statement_timeout (first use of the connection) + the query";
  ASSERT_EQ(j->status, job::status::done);

  EXPECT_EQ(cost([&] { r = finish(*j, turn_part::next); }), 1u)
    << "the final write of the first job and the claim of the second are one script";
  EXPECT_EQ(r.write, written::yes);
  auto j2 = claimed(r);
  ASSERT_TRUE(j2);
  EXPECT_EQ(j2->job_id, second);

  auto h = hash(first);
  EXPECT_EQ(h["status"], "done");
  EXPECT_EQ(h["user"], user);
  EXPECT_EQ(h["query"], "select 1");
  EXPECT_EQ(h["node"], node);
  EXPECT_EQ(h["claim"], token);
  EXPECT_EQ(h.count("pass"), 0u);
  EXPECT_GT(integer({"TTL", redis::keys::job(first)}), 7000);
  EXPECT_EQ(integer({"LLEN", redis::keys::wip_user(user)}), 1) << "only the second job";

  // The same connection again: the timeout is unchanged, so one PostgreSQL round trip.
  EXPECT_EQ(run(*j2), 1u);
  EXPECT_EQ(cost([&] { r = finish(*j2, turn_part::next); }), 1u);
  EXPECT_EQ(r.what, outcome::empty) << "nothing left: the same script gave lease and slot back";
  EXPECT_EQ(hash(second)["status"], "done");
  EXPECT_GT(integer({"TTL", redis::keys::job(second)}), 7000);
  EXPECT_EQ(holder(), std::nullopt);
  EXPECT_EQ(integer({"ZCARD", redis::keys::capacity(host)}), 0);
  EXPECT_EQ(integer({"LLEN", redis::keys::wip_user(user)}), 0);
  EXPECT_EQ(integer({"SISMEMBER", std::string{redis::keys::wip_users}, user}), 0);
  EXPECT_EQ(integer({"SISMEMBER", std::string{redis::keys::queue_index}, user}), 0);
}

TEST_F(job_path, AFailingStepRunsItsOnerrorWithTheQuotedMessageAndSkipsTheRest) {
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
  auto j = claimed(step(turn(turn_part::next)));
  ASSERT_TRUE(j);
  run(*j);
  ASSERT_EQ(j->status, job::status::failed);
  auto r = finish(*j, turn_part::release);
  EXPECT_EQ(r.what, outcome::released);
  EXPECT_EQ(r.queue_length, 0);
  EXPECT_EQ(holder(), std::nullopt);

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
  auto first = submit(R"({"query": ["select 1", "select 2"]})");
  auto second = submit(R"({"query": "select 3"})");
  auto j = claimed(step(turn(turn_part::next)));
  ASSERT_TRUE(j);
  ASSERT_EQ(j->job_id, first);

  // Step 0 done, step 1 started when the node is told to stop.
  auto now = std::chrono::system_clock::now();
  auto st = job::next_statement(*j, cap_ms);
  ASSERT_TRUE(job::begin(*j, *st, now));
  ASSERT_TRUE(job::apply(*j, *st, job::outcome::success(), now));
  st = job::next_statement(*j, cap_ms);
  ASSERT_TRUE(job::begin(*j, *st, now));
  progress(*j);
  ASSERT_TRUE(job::drain(*j, now));
  ASSERT_EQ(j->status, job::status::pending);

  // The requeue and the end of the turn: one step.
  auto a = turn(turn_part::release);
  a.write = write_of(*j, write_kind::requeue, token);
  redis::turn_reply r;
  EXPECT_EQ(cost([&] { r = step(a); }), 1u);
  EXPECT_EQ(r.write, written::yes);
  EXPECT_EQ(r.what, outcome::released);
  EXPECT_EQ(r.queue_length, 2);
  EXPECT_EQ(hash(first)["status"], "pending");
  EXPECT_EQ(integer({"TTL", redis::keys::job(first)}), -1);
  EXPECT_EQ(integer({"LLEN", redis::keys::wip_user(user)}), 0);
  EXPECT_EQ(holder(), std::nullopt);
  auto ids = redis::queued_job_ids(rc, user);
  ASSERT_TRUE(ids);
  EXPECT_EQ(*ids, (std::vector<std::string>{second, first})) << "the next job is the last id";

  // The user's next turn (on this node or another one).
  token = redis::random_token();
  auto again = claimed(step(turn(turn_part::next)));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job_id, first) << "the drained job runs before the user's later job";
  EXPECT_EQ(again->steps[0].status, job::status::done);
  EXPECT_EQ(again->steps[1].status, job::status::pending);
  EXPECT_FALSE(again->steps[1].started_at) << "the interrupted step's start was removed";
  auto next = job::next_statement(*again, cap_ms);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->step, 1u) << "finished steps are not run again";
  run(*again);
  auto later = claimed(finish(*again, turn_part::next));
  EXPECT_EQ(hash(first)["status"], "done");
  ASSERT_TRUE(later);
  EXPECT_EQ(later->job_id, second);
}

TEST_F(job_path, AWriteByANodeThatLostTheLeaseChangesNothing) {
  auto id = submit(R"({"query": "select 1"})");
  auto j = claimed(step(turn(turn_part::next)));
  ASSERT_TRUE(j);
  auto st = job::next_statement(*j, cap_ms);
  ASSERT_TRUE(job::begin(*j, *st, std::chrono::system_clock::now()));
  progress(*j);
  auto lost_token = token;

  // This node's lease expires; another node's turn takes the user and finds
  // the job running under the old claim: an orphan to settle first.
  ASSERT_TRUE(rc.command({"DEL", redis::keys::lock_user(user)}));
  token = redis::random_token();
  auto found = step(turn(turn_part::next));
  ASSERT_EQ(found.what, outcome::recover) << redis::to_string(found.what);
  ASSERT_EQ(found.jobs.size(), 1u);
  EXPECT_EQ(found.jobs[0].job_id, id);
  EXPECT_EQ(found.jobs[0].fields.at("claim"), lost_token);
  EXPECT_EQ(holder(), token);

  // The old node's writes are refused: neither its progress nor its final state lands.
  ASSERT_TRUE(job::apply(*j, *st, job::outcome::success(), std::chrono::system_clock::now()));
  auto stale = turn(turn_part::next);
  stale.token = lost_token;
  stale.slot = "slot-" + lost_token;
  stale.write = write_of(*j, write_kind::final, lost_token);
  auto w = redis::turn_step(rc, stale);
  ASSERT_FALSE(w);
  EXPECT_TRUE(is(w.error(), ec::lease_lost)) << message_of(w.error());
  auto h = hash(id);
  EXPECT_EQ(h["status"], "running");
  EXPECT_EQ(h["claim"], lost_token);
  EXPECT_EQ(integer({"TTL", redis::keys::job(id)}), -1);
  EXPECT_EQ(holder(), token);

  // The new holder settles the orphan (on-node-loss = fail) by a
  // compare-and-set on the claim it was found with.
  job::record rec(found.jobs[0].fields.begin(), found.jobs[0].fields.end());
  auto orphan = job::decode(id, rec);
  ASSERT_TRUE(orphan);
  ASSERT_TRUE(job::node_lost(*orphan, node, job::node_loss_mode::fail,
                             std::chrono::system_clock::now()));
  ASSERT_EQ(orphan->status, job::status::failed);
  auto settle = turn(turn_part::next);
  settle.write = write_of(*orphan, write_kind::final, lost_token);
  auto r = step(settle);
  EXPECT_EQ(r.write, written::yes);
  EXPECT_EQ(r.what, outcome::empty);
  h = hash(id);
  EXPECT_EQ(h["status"], "failed");
  EXPECT_EQ(h["failed_reason"], job::node_lost_message(node));
  EXPECT_EQ(h["claim"], token);
  EXPECT_EQ(holder(), std::nullopt);
}
