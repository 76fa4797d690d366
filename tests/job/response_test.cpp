// The job response body (SPEC §3.6): echoes the submitted shape, never secrets.
#include "src/job/response.hpp"
#include "tests/job/driver.hpp"

#include <gtest/gtest.h>

namespace batchq::job::test {
namespace {

using nlohmann::ordered_json;

TEST(Response, EchoesASimpleJobsQueryAsAString) {
  auto j = job_from(R"({"query": "select 1"})", "id-1");
  auto r = to_response(j);
  EXPECT_EQ(r.dump(), R"({"job_id":"id-1","user":"alice","status":"pending","query":"select 1",)"
                      R"("created_at":"2026-11-28T17:36:10.000Z",)"
                      R"("updated_at":"2026-11-28T17:36:10.000Z"})");
}

TEST(Response, ShowsJobFallbacksOfASimpleJobAtTheTopLevel) {
  auto j = job_from(R"({"query": "select 1", "onsuccess": "js", "onerror": "je"})");
  driver d;
  d.run(j);
  auto r = to_response(j);
  EXPECT_EQ(r["query"], "select 1");
  EXPECT_EQ(r["onsuccess"], "js");
  EXPECT_EQ(r["onerror"], "je");
  EXPECT_EQ(r["fallback_status"], "done");
  EXPECT_EQ(r["status"], "done");
}

TEST(Response, EchoesAMultipleJobAsStepObjectsWithTheirStatus) {
  auto j = job_from(R"({"query": ["a", "b"]})");
  driver d;
  d.failures = {{"a", "oops"}};
  d.run(j);
  auto r = to_response(j);
  ASSERT_TRUE(r["query"].is_array());
  EXPECT_EQ(r["query"][0].dump(),
            R"({"query":"a","status":"failed","failed_reason":"oops",)"
            R"("started_at":"2026-11-28T17:36:10.010Z","ended_at":"2026-11-28T17:36:10.020Z"})");
  EXPECT_EQ(r["query"][1].dump(), R"({"query":"b","status":"skipped"})");
  EXPECT_EQ(r["failed_reason"], "oops");
  EXPECT_FALSE(r.contains("fallback_status"));
}

TEST(Response, KeepsTheNestedFormsJobFallbacksInsideQuery) {
  auto j = job_from(R"({"query": {"query": [{"query": "a", "onerror": "e", "timeout": 5,
      "id": "x:y:z"}], "onsuccess": "js"}})");
  auto r = to_response(j);
  EXPECT_EQ(r["query"].dump(),
            R"({"query":[{"query":"a","status":"pending","onerror":"e","timeout":5,)"
            R"("id":"x:y:z","fallback_status":"pending"}],"onsuccess":"js"})");
  EXPECT_EQ(r["fallback_status"], "pending");
  EXPECT_FALSE(r.contains("onsuccess"));
}

TEST(Response, EchoesTheUnifiedShapeWithTopLevelJobFallbacks) {
  auto j = job_from(R"({"query": [{"query": "a", "onsuccess": "s"}, "b"], "onerror": "je"})");
  driver d;
  d.failures = {{"s", "fallback broke"}};
  d.run(j);
  auto r = to_response(j);
  EXPECT_EQ(r["query"][0]["fallback_status"], "failed");
  EXPECT_EQ(r["query"][0]["failed_reason"], "fallback broke");
  EXPECT_EQ(r["query"][0]["fallback_failed_reason"], "fallback broke");
  EXPECT_FALSE(r["query"][1].contains("fallback_status"));
  EXPECT_EQ(r["onerror"], "je");
  EXPECT_EQ(r["fallback_status"], "skipped");
  EXPECT_EQ(r["status"], "done");
}

TEST(Response, NeverShowsConnectionDetailsTheNodeOrAKey) {
  auto j = job_from(R"({"query": "a", "api_key": "k", "map_key": "m"})");
  j.db.pass = "secret";
  j.node = "node-1";
  auto text = to_response(j).dump();
  for (auto key : {"host", "port", "dbname", "dbuser", "pass", "node", "api_key", "map_key",
                   "secret", "db.local", "cartodb_user_1"})
    EXPECT_EQ(text.find(key), std::string::npos) << key;
}

} // namespace
} // namespace batchq::job::test
