// The chaos suite's invariant checker on made-up runs: a clean run passes, and
// each kind of violation is caught (so a chaos run that passes means
// something), while what the faults explain is counted, not failed.
#include "cluster/chaos/checker.hpp"

#include <algorithm>
#include <stdexcept>

#include <gtest/gtest.h>

using namespace batchq::chaos;

namespace {

/// Two users with three jobs each, all done and committed in order, 100 ms
/// each, one after the other.
run_facts clean_run() {
  run_facts f;
  for (std::string u : {"a", "b"}) {
    for (int s = 1; s <= 3; ++s) {
      auto id = u + "-" + std::to_string(s);
      f.jobs.push_back(job_fact{id, u, s, true, "done", ""});
      int64_t start = s * 200000;
      f.rows.push_back(commit_row{u, s, id, start, start + 100000});
    }
  }
  return f;
}

job_fact& job(run_facts& f, const std::string& id) {
  for (auto& j : f.jobs)
    if (j.id == id)
      return j;
  throw std::logic_error("no job " + id);
}

void drop_rows_of(run_facts& f, const std::string& id) {
  f.rows.erase(std::remove_if(f.rows.begin(), f.rows.end(),
                              [&](const commit_row& r) { return r.job == id; }),
               f.rows.end());
}

} // namespace

TEST(ChaosChecker, ACleanRunPasses) {
  auto v = check(clean_run());
  EXPECT_TRUE(v.ok()) << to_string(v);
  EXPECT_EQ(v.jobs, 6);
  EXPECT_EQ(v.done, 6);
}

TEST(ChaosChecker, ALostJobIsCaught) {
  auto f = clean_run();
  job(f, "a-2").exists = false;
  auto v = check(f);
  EXPECT_EQ(v.lost, 1);
  EXPECT_FALSE(v.ok());
}

TEST(ChaosChecker, PendingAndRunningJobsAreStuck) {
  auto f = clean_run();
  job(f, "a-3").status = "pending";
  job(f, "b-3").status = "running";
  drop_rows_of(f, "a-3");
  drop_rows_of(f, "b-3");
  EXPECT_EQ(check(f).stuck, 2);
}

TEST(ChaosChecker, ALaterJobCommittedBeforeAnEarlierOneIsReordered) {
  auto f = clean_run();
  for (auto& r : f.rows)
    if (r.job == "a-1") {
      r.started_us = 900000;
      r.ended_us = 1000000;
    }
  auto v = check(f);
  EXPECT_GE(v.reordered, 1);
  EXPECT_FALSE(v.ok());
}

TEST(ChaosChecker, TwoStatementsOfOneUserOverlappingInTimeAreCaught) {
  auto f = clean_run();
  for (auto& r : f.rows)
    if (r.job == "b-2")
      r.started_us = 250000; // b-1 ends at 300000
  EXPECT_EQ(check(f).overlapping, 1);
}

TEST(ChaosChecker, AJobFailedByTheOverlapGuardIsAnOverlap) {
  auto f = clean_run();
  job(f, "a-2").status = "failed";
  job(f, "a-2").failed_reason = "chaos: two statements of user a at once";
  drop_rows_of(f, "a-2");
  EXPECT_EQ(check(f).overlapping, 1);
}

TEST(ChaosChecker, AStatementCommittedTwiceIsDoubledUnlessRequeuedFromADeadNode) {
  auto f = clean_run();
  // a-1 again, right after its first run and before a-2: no overlap, no reorder.
  f.rows.push_back(commit_row{"a", 1, "a-1", 300000, 350000});
  auto v = check(f);
  EXPECT_EQ(v.doubled, 1);
  f.mode = loss_mode::requeue;
  f.dead_nodes = {"n1"};
  f.recovered_from_dead = {"a-1"};
  v = check(f);
  EXPECT_EQ(v.doubled, 0);
  EXPECT_EQ(v.reruns, 1);
  EXPECT_TRUE(v.ok()) << to_string(v);
  f.mode = loss_mode::fail;
  EXPECT_EQ(check(f).doubled, 1) << "with fail a job never runs twice";
}

TEST(ChaosChecker, AFailedJobWhoseStatementCommittedIsAFalseFailureUnlessItsNodeDied) {
  auto f = clean_run();
  job(f, "b-1").status = "failed";
  job(f, "b-1").failed_reason = "connection to the database was lost: server closed";
  EXPECT_EQ(check(f).false_failures, 1);
  job(f, "b-1").failed_reason = node_lost_reason("n2");
  EXPECT_EQ(check(f).false_failures, 1) << "n2 did not die";
  f.dead_nodes = {"n2"};
  auto v = check(f);
  EXPECT_EQ(v.false_failures, 0);
  EXPECT_EQ(v.ambiguous, 1);
  EXPECT_TRUE(v.ok()) << to_string(v);
}

TEST(ChaosChecker, ALiveNodeReportingWorkAsLostIsCaughtEvenWithoutACommit) {
  auto f = clean_run();
  job(f, "a-3").status = "failed";
  job(f, "a-3").failed_reason = node_lost_reason("alive");
  drop_rows_of(f, "a-3");
  EXPECT_EQ(check(f).false_failures, 1);
}

TEST(ChaosChecker, WithRequeueAJobFailedAsLostIsUnexpected) {
  auto f = clean_run();
  f.mode = loss_mode::requeue;
  f.dead_nodes = {"n1"};
  job(f, "a-3").status = "failed";
  job(f, "a-3").failed_reason = node_lost_reason("n1");
  drop_rows_of(f, "a-3");
  EXPECT_EQ(check(f).unexpected, 1);
}

TEST(ChaosChecker, OnlyAsManyJobsAsBackendsWereTerminatedMayFailWithALostConnection) {
  auto f = clean_run();
  job(f, "a-2").status = "failed";
  job(f, "a-2").failed_reason =
    "connection to the database was lost: terminating connection due to administrator command";
  drop_rows_of(f, "a-2");
  EXPECT_EQ(check(f).unexpected, 1);
  f.terminated = 1;
  auto v = check(f);
  EXPECT_TRUE(v.ok()) << to_string(v);
  EXPECT_EQ(v.failed_by_fault, 1);
  job(f, "b-2").status = "failed";
  job(f, "b-2").failed_reason = job(f, "a-2").failed_reason;
  drop_rows_of(f, "b-2");
  EXPECT_EQ(check(f).unexpected, 1) << "one backend terminated, two jobs failed";
}

TEST(ChaosChecker, ADoneJobWithoutACommitIsCaught) {
  auto f = clean_run();
  drop_rows_of(f, "b-3");
  EXPECT_EQ(check(f).done_uncommitted, 1);
}

TEST(ChaosChecker, LeasesWorkInProgressOrQueuedIdsLeftInRedisAreResidue) {
  auto f = clean_run();
  f.leases_left = 1;
  f.wip_left = 1;
  f.queued_left = 2;
  EXPECT_EQ(check(f).residue, 3);
}
