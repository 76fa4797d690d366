// Every scenario of CARTO's fallback acceptance suite
// (CartoDB-SQL-API test/acceptance/batch/job-fallback-test.js), replayed on the
// job model with scripted statement outcomes. Each row gives the request, which
// statements fail, where a cancel lands, the statements expected to run, and the
// final per-step status / fallback_status / failed_reason and job status /
// fallback_status. Deliberate differences from CARTO (SPEC §3.4) are marked
// "batchq:" in the row's comment.
#include "src/job/status.hpp"
#include "tests/job/driver.hpp"

#include <gtest/gtest.h>

namespace batchq::job::test {
namespace {

const char* const no_table = "relation \"nonexistent_table\" does not exist";
const char* const syntax = "syntax error at end of input";
const char* const limit_syntax = "LIMIT #,# syntax is not supported";
const char* const no_atm = "relation \"atm_madrid\" does not exist";

struct step_expect {
  const char* status;
  const char* fallback_status; // nullptr: the step has none (absent)
  const char* failed_reason;   // nullptr: absent
  const char* fallback_failed_reason = nullptr;
};

struct scenario {
  const char* name;
  const char* payload;
  std::map<std::string, std::string> failures;
  const char* cancel_while; // SQL running when the user cancels, or nullptr
  std::vector<std::string> ran;
  std::vector<step_expect> steps;
  const char* job_status;
  const char* job_fallback_status; // nullptr: absent
  const char* job_failed_reason;   // nullptr: absent
  const char* job_fallback_failed_reason = nullptr;
};

void PrintTo(const scenario& x, std::ostream* os) {
  *os << x.name;
}

const std::vector<scenario> scenarios = {
    {"OnsuccessOnFirstQueryIsTriggered",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"}]}})",
     {},
     nullptr,
     {"m1", "s1"},
     {{"done", "done", nullptr}},
     "done",
     nullptr,
     nullptr},
    {"OnerrorOnFirstQueryIsNotTriggered",
     R"({"query":{"query":[{"query":"m1","onerror":"e1"}]}})",
     {},
     nullptr,
     {"m1"},
     {{"done", "skipped", nullptr}},
     "done",
     nullptr,
     nullptr},
    {"OnerrorOnFirstQueryIsTriggered",
     R"({"query":{"query":[{"query":"m1","onerror":"e1"}]}})",
     {{"m1", no_table}},
     nullptr,
     {"m1", "e1"},
     {{"failed", "done", no_table}},
     "failed",
     nullptr,
     no_table},
    {"OnsuccessOnFirstQueryIsNotTriggered",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"}]}})",
     {{"m1", no_table}},
     nullptr,
     {"m1"},
     {{"failed", "skipped", no_table}},
     "failed",
     nullptr,
     no_table},
    {"JobOnsuccessIsTriggered",
     R"({"query":{"query":[{"query":"m1"}],"onsuccess":"js"}})",
     {},
     nullptr,
     {"m1", "js"},
     {{"done", nullptr, nullptr}},
     "done",
     "done",
     nullptr},
    {"JobOnsuccessIsNotTriggered",
     R"({"query":{"query":[{"query":"m1"}],"onsuccess":"js"}})",
     {{"m1", no_table}},
     nullptr,
     {"m1"},
     {{"failed", nullptr, no_table}},
     "failed",
     "skipped",
     no_table},
    {"JobOnerrorIsTriggered",
     R"({"query":{"query":[{"query":"m1"}],"onerror":"je"}})",
     {{"m1", no_table}},
     nullptr,
     {"m1", "je"},
     {{"failed", nullptr, no_table}},
     "failed",
     "done",
     no_table},
    {"JobOnerrorIsNotTriggered",
     R"({"query":{"query":[{"query":"m1"}],"onerror":"je"}})",
     {},
     nullptr,
     {"m1"},
     {{"done", nullptr, nullptr}},
     "done",
     "skipped",
     nullptr},
    {"JobOnsuccessAndStepOnsuccessAreTriggered",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"}],"onsuccess":"js"}})",
     {},
     nullptr,
     {"m1", "s1", "js"},
     {{"done", "done", nullptr}},
     "done",
     "done",
     nullptr},
    {"OnsuccessForEachQueryIsTriggered",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"},{"query":"m2","onsuccess":"s2"}]}})",
     {},
     nullptr,
     {"m1", "s1", "m2", "s2"},
     {{"done", "done", nullptr}, {"done", "done", nullptr}},
     "done",
     nullptr,
     nullptr},
    {"OnsuccessForEachQueryIsNotTriggeredWhenTheFirstFails",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"},{"query":"m2","onsuccess":"s2"}]}})",
     {{"m1", no_table}},
     nullptr,
     {"m1"},
     {{"failed", "skipped", no_table}, {"skipped", "skipped", nullptr}},
     "failed",
     nullptr,
     no_table},
    {"OnsuccessForSecondQueryIsNotTriggeredWhenItFails",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"},{"query":"m2","onsuccess":"s2"}]}})",
     {{"m2", no_table}},
     nullptr,
     {"m1", "s1", "m2"},
     {{"done", "done", nullptr}, {"failed", "skipped", no_table}},
     "failed",
     nullptr,
     no_table},
    {"OnerrorIsNotTriggeredForAnyQueryAndSkipped",
     R"({"query":{"query":[{"query":"m1","onerror":"e1"},{"query":"m2","onerror":"e2"}]}})",
     {},
     nullptr,
     {"m1", "m2"},
     {{"done", "skipped", nullptr}, {"done", "skipped", nullptr}},
     "done",
     nullptr,
     nullptr},
    {"OnsuccessIsSkippedOnASyntaxError",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"}]}})",
     {{"m1", syntax}},
     nullptr,
     {"m1"},
     {{"failed", "skipped", syntax}},
     "failed",
     nullptr,
     syntax},
    {"JobOnsuccessIsNotTriggeredAndSkipped",
     R"({"query":{"query":[{"query":"m1"}],"onsuccess":"js"}})",
     {{"m1", syntax}},
     nullptr,
     {"m1"},
     {{"failed", nullptr, syntax}},
     "failed",
     "skipped",
     syntax},
    // CARTO compatibility: a failed onsuccess after a successful main query also
    // sets the step's failed_reason (batchq: plus fallback_failed_reason).
    {"OnsuccessForFirstQueryFailsAndTheJobIsStillDone",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"},{"query":"m2","onsuccess":"s2"}]}})",
     {{"s1", no_table}},
     nullptr,
     {"m1", "s1", "m2", "s2"},
     {{"done", "failed", no_table, no_table}, {"done", "done", nullptr}},
     "done",
     nullptr,
     nullptr},
    {"OnsuccessForSecondQueryFailsAndTheJobIsStillDone",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"},{"query":"m2","onsuccess":"s2"}]}})",
     {{"s2", no_table}},
     nullptr,
     {"m1", "s1", "m2", "s2"},
     {{"done", "done", nullptr}, {"done", "failed", no_table, no_table}},
     "done",
     nullptr,
     nullptr},
    {"JobOnsuccessAndEachStepOnsuccessAreTriggered",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"},{"query":"m2","onsuccess":"s2"}],"onsuccess":"js"}})",
     {},
     nullptr,
     {"m1", "s1", "m2", "s2", "js"},
     {{"done", "done", nullptr}, {"done", "done", nullptr}},
     "done",
     "done",
     nullptr},
    {"JobOnsuccessRunsAndTheJobIsDoneEvenWhenTheSecondOnsuccessFails",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"},{"query":"m2","onsuccess":"s2"}],"onsuccess":"js"}})",
     {{"s2", no_table}},
     nullptr,
     {"m1", "s1", "m2", "s2", "js"},
     {{"done", "done", nullptr}, {"done", "failed", no_table, no_table}},
     "done",
     "done",
     nullptr},
    // batchq: the step keeps its main query's failed_reason; the onerror's message
    // goes to fallback_failed_reason (CARTO overwrote failed_reason; its test used
    // one message for both). The job fallback's message -> job fallback_failed_reason.
    {"FirstOnerrorAndJobOnerrorFailAndTheOthersAreSkipped",
     R"({"query":{"query":[{"query":"m1","onerror":"e1"},{"query":"m2","onerror":"e2"}],"onerror":"je"}})",
     {{"m1", limit_syntax}, {"e1", no_atm}, {"je", no_atm}},
     nullptr,
     {"m1", "e1", "je"},
     {{"failed", "failed", limit_syntax, no_atm}, {"skipped", "skipped", nullptr}},
     "failed",
     "failed",
     limit_syntax,
     no_atm},
    {"FirstOnerrorAndJobOnerrorRunAndTheOthersAreSkipped",
     R"({"query":{"query":[{"query":"m1","onerror":"e1"},{"query":"m2","onerror":"e2"}],"onerror":"je"}})",
     {{"m1", limit_syntax}},
     nullptr,
     {"m1", "e1", "je"},
     {{"failed", "done", limit_syntax}, {"skipped", "skipped", nullptr}},
     "failed",
     "done",
     limit_syntax},
    {"CancelDuringTheMainQuerySkipsStepAndJobOnsuccess",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"}],"onsuccess":"js"}})",
     {},
     "m1",
     {"m1"},
     {{"cancelled", "skipped", nullptr}},
     "cancelled",
     "skipped",
     nullptr},
    {"CancelDuringTheStepOnsuccessCancelsItAndSkipsJobOnsuccess",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"}],"onsuccess":"js"}})",
     {},
     "s1",
     {"m1", "s1"},
     {{"done", "cancelled", nullptr}},
     "cancelled",
     "skipped",
     nullptr},
    // batchq (SPEC §7): a cancel during the job-level fallback cancels it.
    {"CancelDuringTheJobOnsuccessCancelsIt",
     R"({"query":{"query":[{"query":"m1","onsuccess":"s1"}],"onsuccess":"js"}})",
     {},
     "js",
     {"m1", "s1", "js"},
     {{"done", "done", nullptr}},
     "cancelled",
     "cancelled",
     nullptr},
};

class CartoFallbackTable : public ::testing::TestWithParam<scenario> {};

void expect_opt(const std::optional<std::string>& actual, const char* expected,
                const std::string& what) {
  if (expected == nullptr)
    EXPECT_FALSE(actual.has_value()) << what << " = " << actual.value_or("");
  else
    EXPECT_EQ(actual.value_or("<absent>"), expected) << what;
}

void expect_status(const std::optional<status>& actual, const char* expected,
                   const std::string& what) {
  if (expected == nullptr)
    EXPECT_FALSE(actual.has_value()) << what << " = " << to_string(*actual);
  else
    EXPECT_EQ(actual ? to_string(*actual) : "<absent>", std::string{expected}) << what;
}

TEST_P(CartoFallbackTable, EndsWithTheStatusesOfCartosSuite) {
  const auto& sc = GetParam();
  auto j = job_from(sc.payload);
  driver d;
  d.failures = sc.failures;
  std::function<bool(const statement&)> stop;
  if (sc.cancel_while)
    stop = when_running(sc.cancel_while);
  auto running = d.run(j, stop);
  if (sc.cancel_while) {
    ASSERT_TRUE(running.has_value()) << "never ran " << sc.cancel_while;
    EXPECT_EQ(j.status, status::running);
    ASSERT_TRUE(static_cast<bool>(cancel(j, d.tick())));
    // The runner then sees its statement cancelled: a stale outcome, no change.
    auto before = j.updated_at;
    ASSERT_TRUE(static_cast<bool>(apply(j, *running, outcome::cancellation(), d.tick())));
    EXPECT_EQ(j.updated_at, before);
    EXPECT_FALSE(next_statement(j, d.cap_ms).has_value());
  }
  EXPECT_EQ(d.ran, sc.ran);
  EXPECT_FALSE(d.left_running_early) << "job left running while statements remained";
  ASSERT_EQ(j.steps.size(), sc.steps.size());
  for (size_t i = 0; i < sc.steps.size(); ++i) {
    auto where = "step " + std::to_string(i) + " ";
    const auto& s = j.steps[i];
    EXPECT_EQ(to_string(s.status), std::string{sc.steps[i].status}) << where << "status";
    expect_status(s.fallback_status, sc.steps[i].fallback_status, where + "fallback_status");
    expect_opt(s.failed_reason, sc.steps[i].failed_reason, where + "failed_reason");
    expect_opt(s.fallback_failed_reason, sc.steps[i].fallback_failed_reason,
               where + "fallback_failed_reason");
    if (s.status != status::skipped) {
      EXPECT_TRUE(s.started_at.has_value()) << where;
      EXPECT_TRUE(s.ended_at.has_value()) << where;
    } else {
      EXPECT_FALSE(s.started_at.has_value()) << where;
    }
  }
  EXPECT_EQ(to_string(j.status), std::string{sc.job_status});
  expect_status(j.fallback_status, sc.job_fallback_status, "job fallback_status");
  expect_opt(j.failed_reason, sc.job_failed_reason, "job failed_reason");
  expect_opt(j.fallback_failed_reason, sc.job_fallback_failed_reason, "job fallback_failed_reason");
  EXPECT_TRUE(is_final(j.status));
}

INSTANTIATE_TEST_SUITE_P(JobFallbackTest, CartoFallbackTable, ::testing::ValuesIn(scenarios),
                         [](const ::testing::TestParamInfo<scenario>& info) {
                           return std::string{info.param.name};
                         });

// CARTO's batch-multiquery-test.js: a failure skips the rest (batchq: the later
// steps show `skipped`; CARTO left them `pending`).
struct multi_scenario {
  const char* name;
  std::vector<std::string> queries;
  std::string failing;
  std::vector<const char*> statuses;
  const char* job_status;
};

class CartoMultiqueryTable : public ::testing::TestWithParam<multi_scenario> {};

void PrintTo(const multi_scenario& x, std::ostream* os) {
  *os << x.name;
}

TEST_P(CartoMultiqueryTable, EndsWithTheStatusesOfCartosSuite) {
  const auto& sc = GetParam();
  nlohmann::json body{{"query", sc.queries}};
  auto j = job_from(body.dump());
  EXPECT_EQ(j.shape, shape::multiple);
  driver d;
  if (!sc.failing.empty())
    d.failures[sc.failing] = "function shouldfail() does not exist";
  d.run(j);
  ASSERT_EQ(j.steps.size(), sc.statuses.size());
  for (size_t i = 0; i < sc.statuses.size(); ++i)
    EXPECT_EQ(to_string(j.steps[i].status), std::string{sc.statuses[i]}) << "step " << i;
  EXPECT_EQ(to_string(j.status), std::string{sc.job_status});
  if (!sc.failing.empty()) {
    EXPECT_EQ(j.failed_reason.value_or(""), "function shouldfail() does not exist");
  }
}

INSTANTIATE_TEST_SUITE_P(
    BatchMultiqueryTest, CartoMultiqueryTable,
    ::testing::Values(
        multi_scenario{
            "TwoQueriesAreDone", {"select pg_sleep(0)", "select 2"}, "", {"done", "done"}, "done"},
        multi_scenario{"TwoQueriesFailOnTheLast",
                       {"select pg_sleep(0)", "select shouldFail()"},
                       "select shouldFail()",
                       {"done", "failed"},
                       "failed"},
        multi_scenario{"ThreeQueriesFailOnTheLast",
                       {"select 1", "select 2", "select shouldFail()"},
                       "select shouldFail()",
                       {"done", "done", "failed"},
                       "failed"},
        multi_scenario{"ThreeQueriesFailOnTheSecondAndSkipTheThird",
                       {"select 1", "select shouldFail()", "select 3"},
                       "select shouldFail()",
                       {"done", "failed", "skipped"},
                       "failed"}),
    [](const ::testing::TestParamInfo<multi_scenario>& info) {
      return std::string{info.param.name};
    });

} // namespace
} // namespace batchq::job::test
