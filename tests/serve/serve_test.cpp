// The real `batchq serve --worker-only` process against the real Redis and
// PostgreSQL (issue 3's integration tests): jobs written in CARTO's and in
// batchq's format run to the right final state, per-user order, parallel
// users, cancel, per-user timeouts, graceful drain and the node registry.
// Harness: harness.hpp. Every wait is bounded and polls; nothing asserts on a
// fixed sleep.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "src/job/record.hpp"
#include "tests/serve/harness.hpp"

using namespace batchq;
using namespace batchq::test;
using namespace batchq::test::serve;
using namespace std::chrono_literals;

namespace {

struct serve_test : ::testing::Test {
  store st;
  sql db;

  std::unique_ptr<serve_node> start_node(std::vector<std::string> extra = {}) {
    auto n = std::make_unique<serve_node>(std::move(extra));
    EXPECT_TRUE(n->wait_ready(st.batch())) << "node " << n->id() << " did not register";
    return n;
  }

  job::job decoded(const std::string& id) {
    auto h = st.job_hash(id);
    auto j = job::decode(id, job::record(h.begin(), h.end()));
    EXPECT_TRUE(j) << (j ? "" : j.error().message);
    return j ? *j : job::job{};
  }

  static std::string ms_since(clock::time_point t0) {
    return std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0).count());
  }
};

// -- the program's front door -------------------------------------------------------

TEST(batchq_program, HelpForTheProgramAndForServeExitZeroAndNameTheCommands) {
  auto top = run_batchq({"--help"});
  ASSERT_EQ(top.exit_code, 0) << top.output;
  EXPECT_NE(top.output.find("serve"), std::string::npos) << top.output;
  EXPECT_NE(top.output.find("cancel"), std::string::npos) << top.output;

  auto serve = run_batchq({"serve", "--help"});
  ASSERT_EQ(serve.exit_code, 0) << serve.output;
  EXPECT_NE(serve.output.find("serve"), std::string::npos) << serve.output;
  EXPECT_NE(serve.output.find("--worker-only"), std::string::npos) << serve.output;
  EXPECT_NE(serve.output.find("--batch.shutdown-grace"), std::string::npos) << serve.output;

  auto cancel = run_batchq({"cancel", "--help"});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.output;
  EXPECT_NE(cancel.output.find("cancel"), std::string::npos) << cancel.output;
}

TEST(batchq_program, AnUnknownCommandOrABadConfigurationExitsTwoWithAClearMessage) {
  auto unknown = run_batchq({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
  EXPECT_NE(unknown.output.find("unknown command 'frobnicate'"), std::string::npos)
    << unknown.output;

  auto bad = run_batchq({"serve", "--worker-only", "--batch.capacity=0"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("batch.capacity: must be greater than 0, got 0"), std::string::npos)
    << bad.output;

  auto typo = run_batchq({"serve", "--worker-only", "--batch.capacty=3"});
  EXPECT_EQ(typo.exit_code, 2) << typo.output;

  auto missing = run_batchq({"serve", "--config-file=/nonexistent/batchq.ini"});
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_NE(missing.output.find("/nonexistent/batchq.ini"), std::string::npos) << missing.output;
}

// -- node registry -------------------------------------------------------------------

TEST_F(serve_test, ARunningNodeIsRegisteredWithATtlAndRemovedOnCleanExit) {
  auto node = start_node();
  auto key = redis::keys::node(node->id());
  auto h = st.batch().command({"HGETALL", key});
  ASSERT_TRUE(h);
  std::map<std::string, std::string> f;
  for (size_t i = 0; i + 1 < h->elements.size(); i += 2)
    f[h->elements[i].str] = h->elements[i + 1].str;
  EXPECT_EQ(f["address"], "127.0.0.1");
  EXPECT_GT(std::stoi(f["cluster_port"]), 0);
  EXPECT_EQ(f.count("http_port"), 1u);
  EXPECT_FALSE(f["version"].empty());
  EXPECT_EQ(f["started_at"].size(), std::string{"2026-11-28T17:36:10.905Z"}.size());
  auto ttl = st.ttl(key);
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 15) << "3 x the 5 s heartbeat";

  // The heartbeat refreshes the TTL (every 5 s): it goes back up.
  int64_t lowest = ttl;
  bool refreshed = wait_until(
    [&] {
      auto now = st.ttl(key);
      if (now > lowest)
        return true;
      lowest = std::min(lowest, now);
      return false;
    },
    12s, 100ms);
  EXPECT_TRUE(refreshed) << "TTL went down to " << lowest << " and was never refreshed";

  EXPECT_EQ(node->stop(), 0) << node->log();
  auto exists = st.batch().command({"EXISTS", key});
  ASSERT_TRUE(exists);
  EXPECT_EQ(exists->integer, 0) << "the node hash is deleted on clean exit";
}

TEST_F(serve_test, ANodeStartsFromTheExampleConfigFileAndStopsCleanlyOnSigint) {
  // The example file says redis.port=6379 and log.format="text": the flags
  // (the harness's and these) win over it.
  auto node = start_node({"--config-file=" + std::string{BATCHQ_SOURCE_DIR}
                            + "/cluster/batchq.example.ini",
                          "--log.format=json"});
  auto user = st.create_user("ini");
  auto id = st.enqueue_carto({user, "select 1", {}});
  ASSERT_TRUE(st.wait_status(id, {"done", "failed"}, 10s));
  EXPECT_EQ(st.status(id), "done");

  node->process().signal(SIGINT);
  auto code = node->process().wait_exit(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << node->log();
  auto log = node->log();
  std::istringstream lines{log};
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ++n;
    EXPECT_EQ(line.front(), '{') << "not a JSON line: " << line;
  }
  EXPECT_GT(n, 3);
  EXPECT_NE(log.find("\"event\":\"node started\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"signal\":\"SIGINT\""), std::string::npos) << log;
}

// -- many users at once --------------------------------------------------------------

TEST_F(serve_test, TwoHundredUsersWithFiveJobsEachDrainWithoutWaitingForARescan) {
  auto node = start_node();
  constexpr int users_n = 200, jobs_per_user = 5;
  std::vector<std::string> users;
  std::vector<std::string> ids;
  std::vector<std::vector<std::string>> cmds;
  for (int u = 0; u < users_n; ++u) {
    users.push_back(st.create_user("many"));
    for (int k = 0; k < jobs_per_user; ++k) {
      std::string id;
      auto c = st.carto_commands({users.back(), "select " + std::to_string(k), {}}, id);
      ids.push_back(id);
      cmds.insert(cmds.end(), c.begin(), c.end());
    }
  }
  // Preloaded with no PUBLISH, then every user woken back to back.
  auto loaded = st.batch().pipeline(cmds);
  ASSERT_TRUE(loaded) << message_of(loaded.error());
  auto t0 = clock::now();
  st.publish_all(users);

  size_t done = 0;
  bool drained = wait_until(
    [&] {
      while (done < ids.size() && st.status(ids[done]) == "done")
        ++done;
      return done == ids.size();
    },
    60s, 50ms);
  auto elapsed = ms_since(t0);
  std::cout << "[ measured ] " << users_n << " users x " << jobs_per_user << " jobs drained in "
            << elapsed << " ms (rescan-interval 3600 s)\n";
  ASSERT_TRUE(drained) << done << " of " << ids.size() << " jobs done after 60 s; next is "
                       << ids[done] << " = '" << st.status(ids[done]) << "'";
  for (auto& u : users)
    EXPECT_TRUE(st.queue(u).empty()) << u;
}

TEST_F(serve_test, AJobEnqueuedWhileItsUsersQueueIsBeingReleasedStillRunsAtOnce) {
  auto node = start_node();
  auto user = st.create_user("race");
  // Each job is enqueued the moment the previous one is seen done: that is when
  // the user_queue finds the queue empty and releases the lease. A lost
  // wake-up would leave the job pending until the (3600 s) rescan.
  auto id = st.enqueue_carto({user, "select pg_sleep(0.05)", {}});
  auto enqueued = clock::now();
  std::chrono::milliseconds slowest{0};
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(st.wait_status(id, {"done"}, 5s, 1ms)) << "round " << i;
    slowest = std::max(slowest, std::chrono::duration_cast<std::chrono::milliseconds>(
                                  clock::now() - enqueued));
    id = st.enqueue_carto({user, "select " + std::to_string(i), {}});
    enqueued = clock::now();
  }
  EXPECT_TRUE(st.wait_status(id, {"done"}, 5s));
  std::cout << "[ measured ] slowest enqueue-to-done of 60 rounds: " << slowest.count()
            << " ms\n";
}

// -- CARTO's job formats -------------------------------------------------------------

TEST_F(serve_test, ACartoSimpleJobEndsDone) {
  auto node = start_node();
  auto user = st.create_user("carto");
  auto id = st.enqueue_carto({user, "select 1", {}});
  ASSERT_TRUE(st.wait_status(id, {"done", "failed"}, 10s));
  auto h = st.job_hash(id);
  EXPECT_EQ(h["status"], "done");
  EXPECT_EQ(h["query"], "select 1") << "a simple job keeps its SQL string";
  EXPECT_EQ(h.count("failed_reason"), 0u);
}

TEST_F(serve_test, ACartoMultipleJobEndsDoneWithEveryStepDone) {
  auto node = start_node();
  auto user = st.create_user("carto");
  auto t = db.log_table();
  auto id = st.enqueue_carto(
    {user,
     carto_multiple({"insert into " + t + " values ('a', now(), null)",
                     "insert into " + t + " values ('b', now(), null)"}),
     {}});
  ASSERT_TRUE(st.wait_status(id, {"done", "failed"}, 10s));
  auto j = decoded(id);
  EXPECT_EQ(j.status, job::status::done);
  ASSERT_EQ(j.steps.size(), 2u);
  EXPECT_EQ(j.steps[0].status, job::status::done);
  EXPECT_EQ(j.steps[1].status, job::status::done);
  EXPECT_EQ(db.exec("select count(*) from " + t)[0][0].as<int>(), 2);
}

TEST_F(serve_test, ACartoFallbackJobWithAFailingStepEndsFailedWithTheRightStepStatuses) {
  auto node = start_node();
  auto user = st.create_user("carto");
  auto t = db.log_table();
  std::string q =
    R"j({"query":[)j"
    R"j({"query":"select 1","onsuccess":"insert into )j" + t + R"j( values ('step0 ok', now(), null)","status":"pending","fallback_status":"pending"},)j"
    R"j({"query":"select * from nonexistent_table","onerror":"insert into )j" + t + R"j( values ('<%= error_message %>', now(), null)","status":"pending","fallback_status":"pending"},)j"
    R"j({"query":"select 3","status":"pending"}],)j"
    R"j("onerror":"insert into )j" + t + R"j( values ('job onerror', now(), null)"})j";
  auto id = st.enqueue_carto({user, q, {{"fallback_status", "pending"}}});
  ASSERT_TRUE(st.wait_status(id, {"done", "failed", "cancelled"}, 10s));
  auto h = st.job_hash(id);
  EXPECT_EQ(h["status"], "failed");
  EXPECT_EQ(h["failed_reason"], "relation \"nonexistent_table\" does not exist");
  EXPECT_EQ(h["fallback_status"], "done") << "the job's onerror ran";
  auto j = decoded(id);
  ASSERT_EQ(j.steps.size(), 3u);
  EXPECT_EQ(j.steps[0].status, job::status::done);
  EXPECT_EQ(j.steps[0].fallback_status, job::status::done);
  EXPECT_EQ(j.steps[1].status, job::status::failed);
  EXPECT_EQ(j.steps[1].failed_reason, "relation \"nonexistent_table\" does not exist");
  EXPECT_EQ(j.steps[1].fallback_status, job::status::done);
  EXPECT_EQ(j.steps[2].status, job::status::skipped);
  auto rows = db.exec("select job from " + t + " order by started, job");
  std::vector<std::string> got;
  for (const auto& r : rows)
    got.push_back(r[0].as<std::string>());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"job onerror",
                                           "relation \"nonexistent_table\" does not exist",
                                           "step0 ok"}));
}

TEST_F(serve_test, AJobWrittenByBatchqItselfRunsToDone) {
  auto node = start_node();
  auto user = st.create_user("own");
  auto id = st.enqueue_batchq(user, R"({"query": ["select 1", "select 2"], "onsuccess": "select 3"})");
  ASSERT_TRUE(st.wait_status(id, {"done", "failed"}, 10s));
  auto j = decoded(id);
  EXPECT_EQ(j.status, job::status::done);
  EXPECT_EQ(j.fallback_status, job::status::done);
}

TEST_F(serve_test, AtInfoLevelAWorkerLogsExactlyOneJobFinishedLinePerJob) {
  auto node = start_node({"--log.format=json", "--log.level=info"});
  auto user = st.create_user("logs");
  auto ok = st.enqueue_batchq(user, R"({"query": "select 1"})");
  auto bad = st.enqueue_batchq(user, R"({"query": ["select 1", "select * from nonexistent_table"]})");
  ASSERT_TRUE(st.wait_status(ok, {"done", "failed"}, 10s));
  ASSERT_TRUE(st.wait_status(bad, {"done", "failed"}, 10s));
  ASSERT_EQ(node->stop(), std::optional<int>{0});
  std::istringstream lines{node->log()};
  std::map<std::string, int> info_lines, finished_lines;
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("job_id"))
      continue;
    auto id = j["job_id"].get<std::string>();
    if (j["level"] == "info")
      ++info_lines[id];
    if (j["event"] == "job finished") {
      ++finished_lines[id];
      EXPECT_EQ(j["status"], id == ok ? "done" : "failed") << line;
      EXPECT_EQ(j["user"], user) << line;
    }
  }
  for (const auto& id : {ok, bad}) {
    EXPECT_EQ(finished_lines[id], 1) << "job " << id;
    EXPECT_EQ(info_lines[id], 1) << "job " << id << ": only `job finished` at info (SPEC §10)";
  }
}

// -- order and parallelism -----------------------------------------------------------

TEST_F(serve_test, ThreeJobsOfOneUserRunInOrderWithNoOverlap) {
  auto node = start_node();
  auto user = st.create_user("order");
  auto t = db.log_table();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto tag = "'job" + std::to_string(i) + "'";
    ids.push_back(st.enqueue_carto(
      {user,
       carto_multiple({"insert into " + t + " values (" + tag + ", clock_timestamp(), null)",
                       "select pg_sleep(0.2)",
                       "update " + t + " set ended = clock_timestamp() where job = " + tag}),
       {}}));
  }
  for (auto& id : ids)
    ASSERT_TRUE(st.wait_status(id, {"done", "failed"}, 15s));
  for (auto& id : ids)
    EXPECT_EQ(st.status(id), "done");
  auto rows = db.exec("select job, extract(epoch from started)::float8, "
                      "extract(epoch from ended)::float8 from " + t + " order by started");
  ASSERT_EQ(rows.size(), 3u);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(rows[i][0].as<std::string>(), "job" + std::to_string(i)) << "submission order";
  for (int i = 0; i + 1 < 3; ++i)
    EXPECT_GE(rows[i + 1][1].as<double>(), rows[i][2].as<double>())
      << "job" << i + 1 << " started before job" << i << " ended";
}

TEST_F(serve_test, TwoUsersRunInParallel) {
  auto node = start_node();
  auto a = st.create_user("para");
  auto b = st.create_user("para");
  auto t = db.log_table();
  std::vector<std::string> ids;
  for (auto& [user, tag] : {std::pair{a, std::string{"'A'"}}, std::pair{b, std::string{"'B'"}}})
    ids.push_back(st.enqueue_carto(
      {user,
       carto_multiple({"insert into " + t + " values (" + tag + ", clock_timestamp(), null)",
                       "select pg_sleep(1)",
                       "update " + t + " set ended = clock_timestamp() where job = " + tag}),
       {}}));
  for (auto& id : ids)
    ASSERT_TRUE(st.wait_status(id, {"done", "failed"}, 15s));
  auto rows = db.exec("select job, extract(epoch from started)::float8, "
                      "extract(epoch from ended)::float8 from " + t + " order by job");
  ASSERT_EQ(rows.size(), 2u);
  double a_start = rows[0][1].as<double>(), a_end = rows[0][2].as<double>();
  double b_start = rows[1][1].as<double>(), b_end = rows[1][2].as<double>();
  EXPECT_LT(a_start, b_end);
  EXPECT_LT(b_start, a_end) << "A ran " << a_start << ".." << a_end << ", B ran " << b_start
                            << ".." << b_end << ": no overlap";
}

// -- cancel ----------------------------------------------------------------------------

TEST_F(serve_test, ARunningStatementIsCancelledWithBatchqCancelWithinOneSecond) {
  auto node = start_node();
  auto user = st.create_user("cancel");
  auto id = st.enqueue_carto({user, "select pg_sleep(10)", {}});
  ASSERT_TRUE(wait_until([&] { return db.statement_active(id, "select pg_sleep"); }, 10s))
    << "the statement never started; status " << st.status(id);

  auto t0 = clock::now();
  auto args = std::vector<std::string>{"cancel", id, "--direct"};
  for (auto& f : redis_flags())
    args.push_back(f);
  auto res = run_batchq(args, 10s);
  ASSERT_TRUE(st.wait_status(id, {"cancelled", "done", "failed"}, 5s));
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0);
  std::cout << "[ measured ] cancel of a running statement: job cancelled after "
            << elapsed.count() << " ms (the command took " << res.elapsed.count() << " ms)\n";
  EXPECT_EQ(st.status(id), "cancelled");
  EXPECT_LE(elapsed, 1000ms);
  EXPECT_EQ(res.exit_code, 0) << res.output;
  EXPECT_NE(res.output.find("cancelled"), std::string::npos) << res.output;
  EXPECT_TRUE(wait_until([&] { return !db.statement_active(id); }, 2s))
    << "the PostgreSQL statement is still running";
  auto j = decoded(id);
  ASSERT_EQ(j.steps.size(), 1u);
  EXPECT_EQ(j.steps[0].status, job::status::cancelled);

  // A final job cannot be cancelled again; an unknown id is not found.
  auto again = run_batchq(args, 10s);
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_NE(again.output.find("Cannot set status from cancelled to cancelled"), std::string::npos)
    << again.output;
  auto ghost_args = std::vector<std::string>{"cancel", "no-such-job-" + redis::random_token(),
                                             "--direct"};
  for (auto& f : redis_flags())
    ghost_args.push_back(f);
  auto ghost = run_batchq(ghost_args, 10s);
  EXPECT_EQ(ghost.exit_code, 1) << ghost.output;
  EXPECT_NE(ghost.output.find("Job with id " + ghost_args[1] + " not found"), std::string::npos)
    << ghost.output;
}

TEST_F(serve_test, WhenTheOwningNodeIsGoneBatchqCancelStopsTheStatementAndSaysTheCancelIsNotRecordedYet) {
  auto node = start_node();
  auto user = st.create_user("cancel");
  auto id = st.enqueue_carto({user, "select pg_sleep(10)", {}});
  ASSERT_TRUE(wait_until([&] { return db.statement_active(id, "select pg_sleep"); }, 10s))
    << "the statement never started; status " << st.status(id);
  // A crash: the registration stays (until its TTL) but nobody listens on its
  // port, and PostgreSQL keeps running the orphaned pg_sleep.
  node->process().signal(SIGKILL);
  ASSERT_TRUE(node->process().wait_exit(10s));
  ASSERT_TRUE(db.statement_active(id, "select pg_sleep"));

  auto t0 = clock::now();
  std::vector<std::string> argv{batchq_binary(), "cancel", id, "--direct"};
  for (auto& f : redis_flags())
    argv.push_back(f);
  child cli;
  ASSERT_TRUE(cli.start(argv, temp_path("batchq_cancel")));
  EXPECT_TRUE(wait_until([&] { return !db.statement_active(id); }, 5s))
    << "pg_cancel_backend did not stop the statement";
  std::cout << "[ measured ] cancel through pg_cancel_backend (owning node gone): "
            << ms_since(t0) << " ms\n";
  // Nobody can record the cancel while the owning node is dead: the answer
  // says so instead of claiming `cancelled` (SPEC §5 v2).
  auto code = cli.wait_exit(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1) << cli.output();
  EXPECT_NE(cli.output().find("running: the cancel is not recorded yet"), std::string::npos)
    << cli.output();
  EXPECT_EQ(st.status(id), "running");

  // The next node's sweep finds the orphan; the user's cancel (the cancel
  // mark) wins over batch.on-node-loss.
  serve_node next{{"--batch.sweep-interval=1"}};
  EXPECT_TRUE(wait_until([&] { return st.status(id) == "cancelled"; }, 30s)) << st.status(id);
  auto h = st.job_hash(id);
  EXPECT_EQ(h.count("failed_reason"), 0u) << h["failed_reason"];
}

TEST_F(serve_test, ASecondNodeOnATakenClusterPortExitsOneWithAClearMessage) {
  auto first = start_node();
  auto port = st.batch().command({"HGET", redis::keys::node(first->id()), "cluster_port"});
  ASSERT_TRUE(port && port->is_string());
  serve_node second{{"--cluster.port=" + port->str}};
  auto code = second.process().wait_exit(20s);
  ASSERT_TRUE(code.has_value()) << "the second node kept running";
  EXPECT_EQ(*code, 1);
  EXPECT_NE(second.log().find("cannot publish the cluster gate"), std::string::npos)
    << second.log();
  EXPECT_TRUE(first->process().running());
}

TEST_F(serve_test, APendingJobIsCancelledWithBatchqCancelAndNeverRuns) {
  auto user = st.create_user("cancel");
  // No node runs: the job stays pending until the cancel.
  auto id = st.enqueue_carto({user, "select 1", {}}, /*publish=*/false);
  auto args = std::vector<std::string>{"cancel", id, "--direct"};
  for (auto& f : redis_flags())
    args.push_back(f);
  auto res = run_batchq(args, 10s);
  EXPECT_EQ(res.exit_code, 0) << res.output;
  EXPECT_NE(res.output.find("cancelled"), std::string::npos) << res.output;
  EXPECT_EQ(st.status(id), "cancelled");
  EXPECT_TRUE(st.queue(user).empty()) << "the cancelled job left its queue";
  EXPECT_GT(st.ttl(redis::keys::job(id)), 0);
}

// -- timeouts, drain, TTL ----------------------------------------------------------------

TEST_F(serve_test, APerUserTimeoutLimitFailsALongStatementWithPostgresTimeoutMessage) {
  auto node = start_node();
  auto user = st.create_user("limit");
  st.set_timeout_limit(user, 200);
  auto t0 = clock::now();
  auto id = st.enqueue_carto({user, "select pg_sleep(5)", {}});
  ASSERT_TRUE(st.wait_status(id, {"done", "failed", "cancelled"}, 10s));
  auto h = st.job_hash(id);
  EXPECT_EQ(h["status"], "failed");
  EXPECT_EQ(h["failed_reason"], "canceling statement due to statement timeout");
  EXPECT_LT(clock::now() - t0, 4s) << "the 200 ms limit stopped it, not pg_sleep's end";
}

TEST_F(serve_test, SigtermDuringARunningJobRequeuesItAtTheHeadAndAnotherNodeFinishesIt) {
  auto user = st.create_user("drain");
  auto t = db.log_table();
  std::string long_id, later_id;
  {
    auto node = start_node({"--batch.shutdown-grace=1"});
    long_id = st.enqueue_carto(
      {user,
       carto_multiple({"select pg_sleep(3)",
                       "insert into " + t + " values ('long', clock_timestamp(), null)"}),
       {}});
    ASSERT_TRUE(wait_until([&] { return db.statement_active(long_id, "select pg_sleep"); }, 10s))
      << "status " << st.status(long_id);
    later_id = st.enqueue_carto(
      {user, "insert into " + t + " values ('later', clock_timestamp(), null)", {}});

    auto t0 = clock::now();
    auto code = node->stop(20s);
    std::cout << "[ measured ] drain with shutdown-grace=1 s took " << ms_since(t0) << " ms\n";
    ASSERT_TRUE(code.has_value()) << "the node did not exit";
    EXPECT_EQ(*code, 0) << node->log();
    EXPECT_EQ(st.status(long_id), "pending");
    EXPECT_EQ(st.status(later_id), "pending");
    auto q = st.queue(user);
    ASSERT_EQ(q.size(), 2u);
    EXPECT_EQ(q.back(), long_id) << "the drained job runs next (RPOP end of the list)";
    EXPECT_EQ(q.front(), later_id);
    EXPECT_FALSE(db.statement_active(long_id)) << "the drained statement was cancelled";
    auto j = decoded(long_id);
    ASSERT_EQ(j.steps.size(), 2u);
    EXPECT_EQ(j.steps[0].status, job::status::pending);
    auto gone = st.batch().command({"EXISTS", redis::keys::node(node->id())});
    ASSERT_TRUE(gone);
    EXPECT_EQ(gone->integer, 0);
  }
  auto second = start_node();
  ASSERT_TRUE(st.wait_status(long_id, {"done", "failed"}, 15s));
  ASSERT_TRUE(st.wait_status(later_id, {"done", "failed"}, 10s));
  EXPECT_EQ(st.status(long_id), "done");
  EXPECT_EQ(st.status(later_id), "done");
  auto rows = db.exec("select job from " + t + " order by started");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0].as<std::string>(), "long") << "the requeued job ran before the later one";
  EXPECT_EQ(rows[1][0].as<std::string>(), "later");
}

// -- crash: a killed node's work in progress is recovered (SPEC §7) ----------------------

/// Short leases and sweeps, so that a killed node's lease expires and another
/// node's sweep finds its work in progress within about two seconds.
const std::vector<std::string> crash_flags{"--batch.lease-ttl=1000", "--batch.sweep-interval=1"};

/// Whether any backend other than ours still has a statement tagged
/// `/* <job_id> */` (any state: a cancelled backend of a dead client exits).
bool backend_present(sql& db, const std::string& job_id) {
  auto r = db.exec("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
                   "query LIKE '/* " + job_id + " */%'");
  return r[0][0].as<int>() > 0;
}

TEST_F(serve_test, AKilledNodesRunningJobFailsAsInterruptedOnAnotherNodeAndItsBackendIsCancelled) {
  auto user = st.create_user("crash");
  auto a = start_node(crash_flags);
  auto id = st.enqueue_carto({user, "select pg_sleep(30)", {}});
  ASSERT_TRUE(wait_until([&] { return db.statement_active(id, "select pg_sleep"); }, 10s))
    << "the statement never started; status " << st.status(id);
  a->process().signal(SIGKILL);
  ASSERT_TRUE(a->process().wait_exit(10s));
  auto t0 = clock::now();
  EXPECT_EQ(st.status(id), "running");
  EXPECT_TRUE(db.statement_active(id, "select pg_sleep")) << "PostgreSQL keeps running the orphaned statement";

  auto b = start_node(crash_flags);
  ASSERT_TRUE(st.wait_status(id, {"done", "failed", "cancelled", "pending"}, 15s));
  std::cout << "[ measured ] SIGKILL to `failed` (lease-ttl 1 s, sweep 1 s, node start "
               "included): " << ms_since(t0) << " ms\n";
  auto h = st.job_hash(id);
  EXPECT_EQ(h["status"], "failed");
  EXPECT_EQ(h["failed_reason"], "job interrupted: node " + a->id() + " was lost while running it");
  EXPECT_GT(st.ttl(redis::keys::job(id)), 0) << "a final job expires";
  auto wip = st.batch().command({"LLEN", redis::keys::wip_user(user)});
  ASSERT_TRUE(wip);
  EXPECT_EQ(wip->integer, 0) << "the job left work in progress";
  EXPECT_TRUE(wait_until([&] { return !backend_present(db, id); }, 5s))
    << "the orphaned pg_sleep backend is still there";
  std::cout << "[ measured ] SIGKILL to the orphaned backend gone: " << ms_since(t0) << " ms\n";
  // Nothing is left held for the user: the lease was released when its queue was empty.
  EXPECT_TRUE(wait_until(
    [&] {
      auto l = st.batch().command({"EXISTS", redis::keys::lock_user(user)});
      return l && l->integer == 0;
    },
    5s));
}

TEST_F(serve_test, WithOnNodeLossRequeueAKilledNodesJobResumesAtTheInterruptedStepAndEndsDone) {
  auto user = st.create_user("crashrq");
  auto t = db.log_table();
  auto a = start_node(crash_flags);
  auto id = st.enqueue_carto(
    {user,
     carto_multiple({"insert into " + t + " values ('step1', clock_timestamp(), null)",
                     "select pg_sleep(2)"}),
     {}});
  ASSERT_TRUE(wait_until([&] { return db.statement_active(id, "select pg_sleep"); }, 10s))
    << "step 2 never started; status " << st.status(id);
  a->process().signal(SIGKILL);
  ASSERT_TRUE(a->process().wait_exit(10s));
  auto t0 = clock::now();
  EXPECT_EQ(st.status(id), "running");

  auto flags = crash_flags;
  flags.push_back("--batch.on-node-loss=requeue");
  auto b = start_node(flags);
  ASSERT_TRUE(st.wait_status(id, {"done", "failed", "cancelled"}, 15s));
  std::cout << "[ measured ] SIGKILL to `done` after requeue (includes the rerun of "
               "pg_sleep(2)): " << ms_since(t0) << " ms\n";
  auto h = st.job_hash(id);
  EXPECT_EQ(h["status"], "done") << h["failed_reason"];
  auto j = decoded(id);
  ASSERT_EQ(j.steps.size(), 2u);
  EXPECT_EQ(j.steps[0].status, job::status::done);
  EXPECT_EQ(j.steps[1].status, job::status::done);
  auto rows = db.exec("select count(*) from " + t);
  EXPECT_EQ(rows[0][0].as<int>(), 1) << "the finished first step was not run again";
  auto wip = st.batch().command({"LLEN", redis::keys::wip_user(user)});
  ASSERT_TRUE(wip);
  EXPECT_EQ(wip->integer, 0);
  EXPECT_TRUE(st.queue(user).empty());
}

TEST_F(serve_test, AFinishedJobExpiresAfterFinishedJobsTtl) {
  auto node = start_node({"--batch.finished-jobs-ttl=1234"});
  auto user = st.create_user("ttl");
  auto id = st.enqueue_carto({user, "select 1", {}});
  ASSERT_TRUE(st.wait_status(id, {"done", "failed"}, 10s));
  auto ttl = st.ttl(redis::keys::job(id));
  EXPECT_GT(ttl, 1200);
  EXPECT_LE(ttl, 1234);
}

} // namespace
