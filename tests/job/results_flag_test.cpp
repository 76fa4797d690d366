// Asking for kept results (SPEC §11): `results` on the job and on step
// objects, from JSON and form bodies, its messages, the record round trip and
// the job response.
#include "src/job/parse.hpp"
#include "src/job/record.hpp"
#include "src/job/response.hpp"

#include <gtest/gtest.h>

namespace batchq::job {
namespace {

result<job_request> json_body(const std::string& body) {
  return parse_request(body, "application/json", "");
}

result<job_request> form_body(const std::string& body) {
  return parse_request(body, "application/x-www-form-urlencoded", "");
}

std::string error_of(const result<job_request>& r) {
  return r ? "<accepted>" : r.error().message;
}

job make(const std::string& body) {
  auto r = json_body(body);
  EXPECT_TRUE(r) << error_of(r);
  return make_job(r ? *r : job_request{}, "J1", "alice", db_target{"h", "", "d", "u", {}},
                  time_point{});
}

TEST(ResultsFlag, TheJobsFlagCoversEveryStepAndAStepObjectOverridesIt) {
  auto j = make(R"({"query": [{"query": "select 1"}, {"query": "select 2", "results": false},
                             "select 3"], "results": true})");
  EXPECT_TRUE(j.results);
  EXPECT_TRUE(keeps_results(j, 0));
  EXPECT_FALSE(keeps_results(j, 1));
  EXPECT_TRUE(keeps_results(j, 2));
  auto k = make(R"({"query": [{"query": "select 1", "results": true}, "select 2"]})");
  EXPECT_FALSE(k.results);
  EXPECT_TRUE(keeps_results(k, 0));
  EXPECT_FALSE(keeps_results(k, 1));
  EXPECT_FALSE(keeps_any_results(make(R"({"query": "select 1"})")));
  EXPECT_FALSE(keeps_any_results(make(R"({"query": "select 1", "results": null})")));
}

TEST(ResultsFlag, AFlagThatIsNoBooleanIsRefusedWithItsPath) {
  EXPECT_EQ(error_of(json_body(R"({"query": "select 1", "results": "yes"})")),
            "results must be a boolean");
  EXPECT_EQ(error_of(json_body(R"({"query": "select 1", "results": 1})")),
            "results must be a boolean");
  EXPECT_EQ(error_of(json_body(R"({"query": ["a", {"query": "b", "results": "true"}]})")),
            "query[1].results must be a boolean");
  EXPECT_EQ(error_of(json_body(
              R"({"query": {"query": [{"query": "b", "results": []}], "onerror": "x"}})")),
            "query.query[0].results must be a boolean");
}

TEST(ResultsFlag, FormBodiesSayTrueOrFalse) {
  auto r = form_body("query[0][query]=select+1&query[1][query]=select+2"
                     "&query[1][results]=true&results=false");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_FALSE(r->results);
  EXPECT_FALSE(r->steps[0].results.has_value());
  EXPECT_EQ(r->steps[1].results, true);
  auto s = form_body("query=select+1&results=true");
  ASSERT_TRUE(s) << error_of(s);
  EXPECT_TRUE(s->results);
  EXPECT_EQ(error_of(form_body("query=select+1&results=1")), "results must be a boolean");
  EXPECT_EQ(error_of(form_body("query[0][query]=a&query[0][results]=yes")),
            "query[0].results must be a boolean");
}

TEST(ResultsFlag, TheRecordKeepsTheFlagsAndReadsTheStepsMeta) {
  auto j = make(R"({"query": [{"query": "select 1", "results": false}, "select 2"],
                    "results": true})");
  auto rec = encode(j);
  rec.emplace_back("results:1", R"({"run":"r","start":0,"rows":3,"bytes":21,)"
                                R"("truncated":true,"finished":true})");
  rec.emplace_back("results:1:columns", R"([{"name":"n","type":"int4"}])");
  auto back = decode("J1", rec);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(back->results);
  EXPECT_EQ(back->steps[0].results, false);
  EXPECT_FALSE(back->steps[1].results.has_value());
  EXPECT_FALSE(back->steps[0].kept.has_value());
  ASSERT_TRUE(back->steps[1].kept.has_value());
  EXPECT_EQ(back->steps[1].kept->rows, 3);
  EXPECT_EQ(back->steps[1].kept->bytes, 21);
  EXPECT_TRUE(back->steps[1].kept->truncated);
  EXPECT_TRUE(back->steps[1].kept->finished);
  EXPECT_EQ(back->steps[1].kept->columns, R"([{"name":"n","type":"int4"}])");
  // A job that asks nothing stores nothing new.
  for (const auto& [k, v] : encode(make(R"({"query": ["select 1"]})")))
    EXPECT_NE(k, "results");
}

TEST(ResultsFlag, TheResponseSaysResultsTrueAndEachFinishedStepWhatItKept) {
  auto j = make(R"({"query": [{"query": "select 1"}, {"query": "select 2"}], "results": true})");
  j.steps[0].kept = kept_rows{0, 2, 12, false, true, "[]"};
  j.steps[1].kept = kept_rows{2, 1, 5, false, false, "[]"}; // still running
  auto doc = to_response(j);
  EXPECT_EQ(doc["results"], true);
  EXPECT_EQ(doc["query"][0]["results"],
            (nlohmann::ordered_json{{"rows", 2}, {"bytes", 12}, {"truncated", false}}));
  EXPECT_FALSE(doc["query"][1].contains("results"));
  // The stored query JSON never carries the meta.
  EXPECT_FALSE(query_json(j)[0].contains("results"));
  auto simple = to_response(make(R"({"query": "select 1", "results": true})"));
  EXPECT_EQ(simple["results"], true);
  EXPECT_EQ(simple["query"], "select 1");
  EXPECT_FALSE(to_response(make(R"({"query": "select 1"})")).contains("results"));
}

} // namespace
} // namespace batchq::job
