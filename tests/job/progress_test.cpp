// The progression (SPEC §3.4, §3.5, §7): next statement, timeouts, templates,
// cancel, drain, node loss and resume, driven with scripted outcomes.
#include "src/job/record.hpp"
#include "tests/job/driver.hpp"

#include <gtest/gtest.h>

namespace batchq::job::test {
namespace {

TEST(Progress, AJobStaysRunningUntilItsLastFallbackHasFinished) {
  auto j = job_from(R"({"query": [{"query": "m1", "onerror": "e1"}, "m2"], "onerror": "je"})");
  driver d;
  d.failures = {{"m1", "boom"}};
  auto st = d.run(j, when_running("je"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(j.status, status::running);
  EXPECT_EQ(j.failed_reason, "boom");
  EXPECT_EQ(j.steps[0].status, status::failed);
  EXPECT_EQ(j.steps[1].status, status::skipped);
  EXPECT_EQ(j.fallback_status, status::running);
  d.finish(j, *st);
  EXPECT_EQ(j.status, status::failed);
  EXPECT_EQ(j.fallback_status, status::done);
  EXPECT_EQ(d.ran, (std::vector<std::string>{"m1", "e1", "je"}));
}

TEST(Progress, TheUnifiedShapeRunsStepAndJobFallbacks) {
  auto j = job_from(R"({"query": [{"query": "m1", "onsuccess": "s1"}, "m2"],
                        "onsuccess": "js", "onerror": "je"})");
  EXPECT_EQ(j.shape, shape::unified);
  driver d;
  d.run(j);
  EXPECT_EQ(d.ran, (std::vector<std::string>{"m1", "s1", "m2", "js"}));
  EXPECT_EQ(j.status, status::done);
  EXPECT_EQ(j.fallback_status, status::done);
  EXPECT_FALSE(j.steps[1].fallback_status.has_value());
}

TEST(Progress, ASimpleJobWithAJobOnerrorRunsItAfterTheFailure) {
  auto j = job_from(R"({"query": "update t", "onerror": "je", "onsuccess": "js"})");
  driver d;
  d.failures = {{"update t", "relation \"t\" does not exist"}};
  d.run(j);
  EXPECT_EQ(d.ran, (std::vector<std::string>{"update t", "je"}));
  EXPECT_EQ(j.status, status::failed);
  EXPECT_EQ(j.fallback_status, status::done);
  EXPECT_EQ(j.failed_reason, "relation \"t\" does not exist");
}

TEST(Progress, TemplatesAreRenderedInTheSentSqlButStoredUnrendered) {
  auto onerror = std::string{"INSERT INTO errs VALUES ('<%= job_id %>', '<%= error_message %>')"};
  nlohmann::json body{{"query",
                       {{"query", {{{"query", "m1"}, {"onerror", onerror}}}},
                        {"onerror", "SELECT '<%=error_message%>', '<%=job_id%>'"}}}};
  auto j = job_from(body.dump(), "4f0c-id");
  driver d;
  d.failures = {{"m1", "column \"it's\" does not exist"}};
  d.run(j);
  ASSERT_EQ(d.ran.size(), 3u);
  EXPECT_EQ(d.ran[1], "INSERT INTO errs VALUES ('4f0c-id', 'column \"it''s\" does not exist')");
  EXPECT_EQ(d.ran[2], "SELECT 'column \"it''s\" does not exist', '4f0c-id'");
  EXPECT_EQ(j.steps[0].onerror, onerror);
  EXPECT_EQ(j.steps[0].fallback_status, status::done);
}

TEST(Progress, AnOnsuccessTemplateGetsTheJobId) {
  auto j = job_from(R"J({"query": {"query": [{"query": "create table b (id text)"},
      {"query": "SELECT 1", "onsuccess": "INSERT INTO b VALUES ('<%= job_id %>')"}]}})J",
                    "abc");
  driver d;
  d.run(j);
  EXPECT_EQ(d.ran.back(), "INSERT INTO b VALUES ('abc')");
}

TEST(Progress, TheFirstStatementOfASimpleJobIsItsQueryUntagged) {
  auto j = job_from(R"({"query": "select 1"})", "job-42");
  auto st = next_statement(j, 1000);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->kind, statement_kind::step);
  EXPECT_EQ(st->sql, "select 1"); // src/pg adds "/* job-42 */ " on the wire
}

TEST(Timeout, AStepRunsUnderTheSmallerOfItsTimeoutAndTheCap) {
  auto j = job_from(R"({"query": [{"query": "a", "timeout": 200}, {"query": "b", "timeout": 5000},
      {"query": "c", "timeout": 0}, "d"]})");
  std::vector<int64_t> timeouts;
  for (int i = 0; i < 4; ++i) {
    auto st = next_statement(j, 1000);
    ASSERT_TRUE(st.has_value());
    timeouts.push_back(st->timeout_ms);
    ASSERT_TRUE(begin(j, *st, at(i)));
    ASSERT_TRUE(apply(j, *st, outcome::success(), at(i)));
  }
  EXPECT_EQ(timeouts, (std::vector<int64_t>{200, 1000, 1000, 1000}));
}

TEST(Timeout, FallbacksRunUnderTheCap) {
  auto j = job_from(R"({"query": {"query": [{"query": "a", "timeout": 10, "onsuccess": "s"}],
      "onsuccess": "js"}})");
  driver d;
  d.cap_ms = 777;
  std::vector<int64_t> timeouts;
  while (auto st = d.begin_next(j)) {
    timeouts.push_back(st->timeout_ms);
    d.finish(j, *st);
  }
  EXPECT_EQ(timeouts, (std::vector<int64_t>{10, 777, 777}));
}

TEST(Timeout, ATimedOutStepFailsWithPostgresMessage) {
  auto j = job_from(R"J({"query": ["select pg_sleep(1)", "select 2"]})J");
  auto st = next_statement(j, 100);
  ASSERT_TRUE(begin(j, *st, at(1)));
  ASSERT_TRUE(
      apply(j, *st, outcome::timed_out("canceling statement due to statement timeout"), at(2)));
  EXPECT_EQ(j.status, status::failed);
  EXPECT_EQ(j.failed_reason, "canceling statement due to statement timeout");
  EXPECT_EQ(j.steps[1].status, status::skipped);
}

TEST(Timestamps, StepsGetStartedAndEndedAtAndTheJobItsUpdatedAt) {
  auto j = job_from(R"({"query": ["a", "b"]})");
  EXPECT_EQ(j.created_at, "2026-11-28T17:36:10.000Z");
  auto st = next_statement(j, 0);
  EXPECT_EQ(st->timeout_ms, 0);
  ASSERT_TRUE(begin(j, *st, at(905)));
  EXPECT_EQ(j.status, status::running);
  EXPECT_EQ(j.steps[0].started_at, "2026-11-28T17:36:10.905Z");
  EXPECT_FALSE(j.steps[0].ended_at.has_value());
  ASSERT_TRUE(apply(j, *st, outcome::success(), at(1500)));
  EXPECT_EQ(j.steps[0].ended_at, "2026-11-28T17:36:11.500Z");
  EXPECT_EQ(j.updated_at, "2026-11-28T17:36:11.500Z");
  EXPECT_FALSE(j.steps[1].started_at.has_value());
  EXPECT_EQ(j.created_at, "2026-11-28T17:36:10.000Z");
}

TEST(Progress, RefusesAnOutcomeForAStatementThatIsNotRunning) {
  auto j = job_from(R"({"query": ["a", "b"]})");
  auto first = *next_statement(j, 0);
  auto r = apply(j, first, outcome::success(), at(1));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, problem_kind::invalid_transition);
  EXPECT_EQ(r.error().message, "Cannot set status from pending to done");
  ASSERT_TRUE(begin(j, first, at(2)));
  statement second = first;
  second.step = 1;
  EXPECT_EQ(apply(j, second, outcome::failure("x"), at(3)).error().message,
            "Cannot set status from running to failed");
  EXPECT_EQ(begin(j, second, at(3)).error().message, "Cannot set status from pending to running");
}

TEST(Progress, StartRefusesAJobThatIsNotPending) {
  auto j = job_from(R"({"query": "a"})");
  ASSERT_TRUE(start(j, at(1)));
  EXPECT_EQ(start(j, at(2)).error().message, "Cannot set status from running to running");
}

TEST(Cancel, APendingJobIsCancelledAndEverythingSkipped) {
  auto j = job_from(R"({"query": {"query": [{"query": "a", "onerror": "e"}, {"query": "b"}],
      "onsuccess": "js"}})");
  ASSERT_TRUE(cancel(j, at(5)));
  EXPECT_EQ(j.status, status::cancelled);
  EXPECT_EQ(j.steps[0].status, status::skipped);
  EXPECT_EQ(j.steps[0].fallback_status, status::skipped);
  EXPECT_EQ(j.steps[1].status, status::skipped);
  EXPECT_EQ(j.fallback_status, status::skipped);
  EXPECT_FALSE(next_statement(j, 0).has_value());
}

TEST(Cancel, AFinalJobRefusesWithTheExactText) {
  auto j = job_from(R"({"query": "a"})");
  driver d;
  d.run(j);
  ASSERT_EQ(j.status, status::done);
  auto r = cancel(j, at(9));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, problem_kind::invalid_transition);
  EXPECT_EQ(r.error().message, "Cannot set status from done to cancelled");
}

TEST(Cancel, ARunningMultipleJobCancelsTheStepAndSkipsTheRest) {
  auto j = job_from(R"({"query": ["a", "b", "c"]})");
  driver d;
  d.run(j, when_running("b"));
  ASSERT_TRUE(cancel(j, at(99)));
  EXPECT_EQ(j.steps[0].status, status::done);
  EXPECT_EQ(j.steps[1].status, status::cancelled);
  EXPECT_EQ(j.steps[1].ended_at, "2026-11-28T17:36:10.099Z");
  EXPECT_EQ(j.steps[2].status, status::skipped);
  EXPECT_EQ(j.status, status::cancelled);
}

TEST(Drain, MidStepPutsTheJobAndTheStepBackToPending) {
  auto j = job_from(R"({"query": ["a", "b", "c"]})");
  driver d;
  d.run(j, when_running("b"));
  ASSERT_TRUE(drain(j, d.tick()));
  EXPECT_EQ(j.status, status::pending);
  EXPECT_EQ(j.steps[0].status, status::done);
  EXPECT_EQ(j.steps[1].status, status::pending);
  EXPECT_FALSE(j.steps[1].started_at.has_value());
  d.ran.clear();
  d.run(j);
  EXPECT_EQ(d.ran, (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(j.status, status::done);
}

TEST(Drain, MidStepFallbackRunsOnlyThatFallbackAgain) {
  auto j = job_from(R"({"query": [{"query": "a", "onsuccess": "s"}, "b"]})");
  driver d;
  d.run(j, when_running("s"));
  ASSERT_TRUE(drain(j, d.tick()));
  EXPECT_EQ(j.status, status::pending);
  EXPECT_EQ(j.steps[0].status, status::done);
  EXPECT_EQ(j.steps[0].fallback_status, status::pending);
  d.ran.clear();
  d.run(j);
  EXPECT_EQ(d.ran, (std::vector<std::string>{"s", "b"}));
}

TEST(Drain, MidJobFallbackRunsOnlyTheJobFallbackAgain) {
  auto j = job_from(R"({"query": ["a", "b"], "onerror": "je", "onsuccess": "js"})");
  driver d;
  d.failures = {{"b", "bad"}};
  d.run(j, when_running("je"));
  ASSERT_TRUE(drain(j, d.tick()));
  EXPECT_EQ(j.status, status::pending);
  EXPECT_EQ(j.fallback_status, status::pending);
  EXPECT_EQ(j.steps[1].status, status::failed);
  d.ran.clear();
  d.run(j);
  EXPECT_EQ(d.ran, (std::vector<std::string>{"je"}));
  EXPECT_EQ(j.status, status::failed);
  EXPECT_EQ(j.fallback_status, status::done);
}

TEST(Drain, LeavesPendingAndFinalJobsUnchanged) {
  auto j = job_from(R"({"query": "a"})");
  auto before = j.updated_at;
  ASSERT_TRUE(drain(j, at(50)));
  EXPECT_EQ(j.status, status::pending);
  EXPECT_EQ(j.updated_at, before);
  driver d;
  d.run(j);
  ASSERT_TRUE(drain(j, at(50)));
  EXPECT_EQ(j.status, status::done);
}

TEST(NodeLoss, RequeueModeMidStepIsLikeADrain) {
  auto j = job_from(R"({"query": ["a", "b"]})");
  driver d;
  d.run(j, when_running("b"));
  ASSERT_TRUE(node_lost(j, "n1", node_loss_mode::requeue, d.tick()));
  EXPECT_EQ(j.status, status::pending);
  EXPECT_EQ(j.steps[1].status, status::pending);
  EXPECT_FALSE(j.failed_reason.has_value());
}

TEST(NodeLoss, FailModeMidStepFailsItAndTheJobContinuesAsAfterAFailure) {
  auto j = job_from(R"({"query": [{"query": "a", "onerror": "e"}, "b"], "onerror": "je"})");
  driver d;
  d.run(j, when_running("a"));
  ASSERT_TRUE(node_lost(j, "node-7", node_loss_mode::fail, d.tick()));
  auto msg = "job interrupted: node node-7 was lost while running it";
  EXPECT_EQ(j.steps[0].status, status::failed);
  EXPECT_EQ(j.steps[0].failed_reason, msg);
  EXPECT_EQ(j.steps[1].status, status::skipped);
  EXPECT_EQ(j.failed_reason, msg);
  // Fallbacks remain: the job goes back to pending for the next lease holder.
  EXPECT_EQ(j.status, status::pending);
  d.ran.clear();
  d.run(j);
  EXPECT_EQ(d.ran, (std::vector<std::string>{"e", "je"}));
  EXPECT_EQ(j.status, status::failed);
  EXPECT_EQ(j.fallback_status, status::done);
}

TEST(NodeLoss, FailModeWithNothingLeftMakesTheJobFinalAtOnce) {
  auto j = job_from(R"({"query": ["a", "b"]})");
  driver d;
  d.run(j, when_running("a"));
  ASSERT_TRUE(node_lost(j, "n2", node_loss_mode::fail, d.tick()));
  EXPECT_EQ(j.status, status::failed);
  EXPECT_EQ(j.steps[1].status, status::skipped);
  EXPECT_FALSE(next_statement(j, 0).has_value());
}

TEST(NodeLoss, FailModeMidJobFallbackFailsTheFallbackOnly) {
  auto j = job_from(R"({"query": {"query": [{"query": "a"}], "onsuccess": "js"}})");
  driver d;
  d.run(j, when_running("js"));
  ASSERT_TRUE(node_lost(j, "n3", node_loss_mode::fail, d.tick()));
  EXPECT_EQ(j.status, status::done);
  EXPECT_EQ(j.fallback_status, status::failed);
  EXPECT_EQ(j.fallback_failed_reason, "job interrupted: node n3 was lost while running it");
  EXPECT_FALSE(j.failed_reason.has_value());
}

TEST(NodeLoss, RequeueModeMidJobFallbackRunsOnlyTheJobFallbackAgain) {
  auto j = job_from(R"({"query": {"query": [{"query": "a"}], "onsuccess": "js"}})");
  driver d;
  d.run(j, when_running("js"));
  ASSERT_TRUE(node_lost(j, "n3", node_loss_mode::requeue, d.tick()));
  EXPECT_EQ(j.status, status::pending);
  EXPECT_EQ(j.fallback_status, status::pending);
  d.ran.clear();
  d.run(j);
  EXPECT_EQ(d.ran, (std::vector<std::string>{"js"}));
}

TEST(Resume, ARequeuedJobReadBackFromItsRecordDoesNotRerunFinishedSteps) {
  for (auto body : {R"({"query": ["a", "b", "c"]})",
                    R"({"query": {"query": [{"query": "a", "onsuccess": "s"}, {"query": "b"},
                        {"query": "c"}], "onsuccess": "js"}})",
                    R"({"query": [{"query": "a"}, "b", "c"], "onsuccess": "js"})"}) {
    auto j = job_from(body);
    driver d;
    d.run(j, when_running("b"));
    ASSERT_TRUE(drain(j, d.tick()));
    auto back = decode(j.job_id, encode(j));
    ASSERT_TRUE(back) << back.error().message;
    d.ran.clear();
    d.run(*back);
    EXPECT_EQ(d.ran.front(), "b") << body;
    EXPECT_EQ(std::count(d.ran.begin(), d.ran.end(), "a"), 0) << body;
    EXPECT_EQ(back->status, status::done) << body;
  }
}

TEST(Resume, ASimpleJobDrainedDuringItsJobFallbackResumesThere) {
  auto j = job_from(R"({"query": "a", "onsuccess": "js"})");
  driver d;
  d.run(j, when_running("js"));
  ASSERT_TRUE(drain(j, d.tick()));
  auto back = decode(j.job_id, encode(j));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->steps[0].status, status::done);
  d.ran.clear();
  d.run(*back);
  EXPECT_EQ(d.ran, (std::vector<std::string>{"js"}));
  EXPECT_EQ(back->status, status::done);
}

TEST(Resume, StartingAJobWithNothingLeftMakesItFinal) {
  auto j = job_from(R"({"query": ["a"], "onerror": "je"})");
  j.steps[0].status = status::done; // e.g. a record left this way
  ASSERT_TRUE(start(j, at(1)));
  EXPECT_EQ(j.status, status::done);
  EXPECT_EQ(j.fallback_status, status::skipped);
}

} // namespace
} // namespace batchq::job::test
