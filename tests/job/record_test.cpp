// The Redis record batch:jobs:{id} (SPEC §3.6, §4): encode/decode round trips,
// records written by CARTO's API (JobSimple, JobMultiple, JobFallback, built here
// field by field as CARTO's job backend writes them: every data property but
// job_id, `query` JSON-stringified unless it is a string), and batchq records as
// CARTO's reader would classify them.
#include "src/job/record.hpp"
#include "src/job/response.hpp"
#include "tests/job/driver.hpp"

#include <gtest/gtest.h>

namespace batchq::job::test {
namespace {

using nlohmann::json;

std::optional<std::string> field(const record& r, const std::string& key) {
  for (const auto& [k, v] : r)
    if (k == key)
      return v;
  return std::nullopt;
}

job decoded(const std::string& id, const record& r) {
  auto j = decode(id, r);
  EXPECT_TRUE(static_cast<bool>(j)) << (j ? "" : j.error().message);
  return j ? *j : job{};
}

// Which of CARTO's job classes its API would build from this record, reading the
// fields its backend HMGETs and JSON-parsing `query` as it does; "" when CARTO
// would answer "not found" or refuse the record.
std::string carto_class(const record& r) {
  for (auto key : {"user", "status", "query", "created_at", "updated_at"})
    if (field(r, key).value_or("").empty())
      return "";
  auto text = *field(r, "query");
  auto q = json::parse(text, nullptr, false);
  if (q.is_discarded())
    q = text;
  auto has_string_query = [](const json& x) {
    return x.is_object() && x.contains("query") && x["query"].is_string() &&
           !x["query"].get<std::string>().empty();
  };
  if (q.is_string())
    return "JobSimple";
  if (q.is_array()) {
    for (auto& x : q)
      if (!x.is_string() && !has_string_query(x))
        return "";
    return "JobMultiple";
  }
  if (q.is_object() && q.contains("query") && q["query"].is_array()) {
    for (auto& x : q["query"])
      if (!has_string_query(x))
        return "";
    return "JobFallback";
  }
  return "";
}

void expect_same(const job& a, const job& b) {
  EXPECT_EQ(to_response(a).dump(), to_response(b).dump());
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.db.host, b.db.host);
  EXPECT_EQ(a.db.port, b.db.port);
  EXPECT_EQ(a.db.dbname, b.db.dbname);
  EXPECT_EQ(a.db.dbuser, b.db.dbuser);
  EXPECT_EQ(a.node, b.node);
  ASSERT_EQ(a.steps.size(), b.steps.size());
  for (size_t i = 0; i < a.steps.size(); ++i) {
    EXPECT_EQ(a.steps[i].status, b.steps[i].status);
    EXPECT_EQ(a.steps[i].started_at, b.steps[i].started_at);
    EXPECT_EQ(a.steps[i].ended_at, b.steps[i].ended_at);
  }
}

const char* const bodies[] = {
    R"J({"query": "select 1"})J",
    R"J({"query": "select 1", "onsuccess": "js", "onerror": "je"})J",
    R"J({"query": ["select 1", "select 2"]})J",
    R"J({"query": ["select 1", "select 2"], "onerror": "je"})J",
    R"J({"query": {"query": [{"query": "a", "onsuccess": "s", "timeout": 10, "id": "i:j:k"},
      {"query": "b", "onerror": "e"}], "onsuccess": "js", "onerror": "je"}})J",
    R"J({"query": [{"query": "a", "onerror": "e"}, "b"], "onsuccess": "js"})J",
};

TEST(Record, EveryShapeRoundTripsAtEveryPointOfItsRun) {
  for (auto body : bodies) {
    for (const char* failing : {"", "a", "select 1", "s", "js"}) {
      auto j = job_from(body);
      j.node = "node-1";
      expect_same(j, decoded(j.job_id, encode(j)));
      driver d;
      if (*failing)
        d.failures[failing] = "it's broken";
      while (auto st = d.begin_next(j)) {
        expect_same(j, decoded(j.job_id, encode(j)));
        d.finish(j, *st);
        expect_same(j, decoded(j.job_id, encode(j)));
      }
      EXPECT_TRUE(is_final(j.status)) << body;
    }
  }
}

TEST(Record, StoresCartosFieldsAndNeverAPassword) {
  auto j = job_from(R"J({"query": "select 1"})J", "the-id");
  j.db.pass = "secret";
  auto r = encode(j);
  EXPECT_EQ(field(r, "job_id"), "the-id");
  EXPECT_EQ(field(r, "user"), "alice");
  EXPECT_EQ(field(r, "status"), "pending");
  EXPECT_EQ(field(r, "query"), "select 1");
  EXPECT_EQ(field(r, "created_at"), "2026-11-28T17:36:10.000Z");
  EXPECT_EQ(field(r, "updated_at"), "2026-11-28T17:36:10.000Z");
  EXPECT_EQ(field(r, "host"), "db.local");
  EXPECT_EQ(field(r, "port"), "5432");
  EXPECT_EQ(field(r, "dbname"), "cartodb_user_1_db");
  EXPECT_EQ(field(r, "dbuser"), "cartodb_user_1");
  EXPECT_EQ(field(r, "shape"), "simple");
  EXPECT_EQ(field(r, "step_status"), "pending");
  EXPECT_FALSE(field(r, "pass").has_value());
  for (const auto& [k, v] : r)
    EXPECT_EQ(v.find("secret"), std::string::npos) << k;
}

TEST(Record, KeepsJobFallbacksOfSimpleAndUnifiedJobsInHashFields) {
  auto simple = encode(job_from(R"J({"query": "a", "onsuccess": "js", "onerror": "je"})J"));
  EXPECT_EQ(field(simple, "onsuccess"), "js");
  EXPECT_EQ(field(simple, "onerror"), "je");
  EXPECT_EQ(field(simple, "fallback_status"), "pending");
  auto unified =
      encode(job_from(R"J({"query": [{"query": "a", "onerror": "e"}], "onsuccess": "js"})J"));
  EXPECT_EQ(field(unified, "onsuccess"), "js");
  EXPECT_EQ(
      json::parse(*field(unified, "query")),
      json::parse(
          R"J([{"query":"a","status":"pending","onerror":"e","fallback_status":"pending"}])J"));
}

TEST(Record, StoresTheNestedFormExactlyInCartosJobFallbackLayout) {
  auto j = job_from(R"J({"query": {"query": [{"query": "a", "onsuccess": "s"}, {"query": "b"}],
      "onerror": "je"}})J");
  auto r = encode(j);
  EXPECT_EQ(
      *field(r, "query"),
      R"J({"query":[{"query":"a","status":"pending","onsuccess":"s","fallback_status":"pending"},)J"
      R"J({"query":"b","status":"pending"}],"onerror":"je"})J");
  EXPECT_EQ(field(r, "fallback_status"), "pending");
  EXPECT_FALSE(field(r, "onerror").has_value());
}

TEST(Record, StoresTheMultipleShapeInCartosJobMultipleLayout) {
  auto r = encode(job_from(R"J({"query": ["a", "b"]})J"));
  EXPECT_EQ(*field(r, "query"),
            R"J([{"query":"a","status":"pending"},{"query":"b","status":"pending"}])J");
}

TEST(Record, EveryBatchqRecordIsReadableByCartosApi) {
  const char* expected[] = {"JobSimple",   "JobSimple",   "JobMultiple",
                            "JobMultiple", "JobFallback", "JobMultiple"};
  for (size_t i = 0; i < std::size(bodies); ++i) {
    auto j = job_from(bodies[i]);
    EXPECT_EQ(carto_class(encode(j)), expected[i]) << bodies[i];
    driver d;
    d.failures["a"] = "x";
    d.run(j);
    EXPECT_EQ(carto_class(encode(j)), expected[i]) << bodies[i];
  }
}

// --- records written by CARTO's API -------------------------------------------

record carto_simple(const std::string& status) {
  return {{"user", "vizzuality"},
          {"query", "SELECT * FROM untitle_table_4"},
          {"host", "localhost"},
          {"port", "5432"},
          {"pass", "carto-secret"},
          {"dbname", "cartodb_test_user_1_db"},
          {"dbuser", "test_cartodb_user_1"},
          {"status", status},
          {"created_at", "2016-07-06T10:10:10.123Z"},
          {"updated_at", "2016-07-06T10:10:11.456Z"}};
}

TEST(CartoRecord, APendingJobSimpleIsRunnableWithItsPassword) {
  auto j = decoded("carto-1", carto_simple("pending"));
  EXPECT_EQ(j.job_id, "carto-1");
  EXPECT_EQ(j.shape, shape::simple);
  EXPECT_EQ(j.user, "vizzuality");
  EXPECT_EQ(j.db.pass, "carto-secret");
  EXPECT_EQ(j.db.port, "5432");
  auto st = next_statement(j, 1000);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->sql, "SELECT * FROM untitle_table_4");
  driver d;
  d.run(j);
  EXPECT_EQ(j.status, status::done);
  // Rewritten by batchq: still no password.
  EXPECT_FALSE(field(encode(j), "pass").has_value());
  EXPECT_EQ(to_response(j)["query"], "SELECT * FROM untitle_table_4");
}

TEST(CartoRecord, AFailedJobSimpleShowsItsReason) {
  auto r = carto_simple("failed");
  r.emplace_back("failed_reason", "relation \"untitle_table_4\" does not exist");
  auto j = decoded("carto-2", r);
  EXPECT_EQ(j.steps[0].status, status::failed);
  EXPECT_EQ(j.failed_reason, "relation \"untitle_table_4\" does not exist");
  EXPECT_FALSE(next_statement(j, 1000).has_value());
  EXPECT_EQ(cancel(j, at(1)).error().message, "Cannot set status from failed to cancelled");
}

TEST(CartoRecord, AJobSimpleWithoutPortOrPassStillDecodes) {
  record r;
  for (auto& kv : carto_simple("running"))
    if (kv.first != "port" && kv.first != "pass")
      r.push_back(kv);
  auto j = decoded("carto-3", r);
  EXPECT_EQ(j.db.port, "");
  EXPECT_FALSE(j.db.pass.has_value());
  EXPECT_EQ(j.steps[0].status, status::running);
}

TEST(CartoRecord, AJobMultipleBetweenQueriesResumesAtItsPendingQuery) {
  auto r = carto_simple("pending");
  r[1].second =
      R"J([{"query":"select 1","status":"done"},{"query":"select 2","status":"pending"}])J";
  auto j = decoded("carto-4", r);
  EXPECT_EQ(j.shape, shape::multiple);
  driver d;
  d.run(j);
  EXPECT_EQ(d.ran, (std::vector<std::string>{"select 2"}));
  EXPECT_EQ(j.status, status::done);
  EXPECT_EQ(to_response(j)["query"][0]["status"], "done");
}

TEST(CartoRecord, AFailedJobMultipleKeepsItsUntouchedPendingQueries) {
  auto r = carto_simple("failed");
  r[1].second =
      R"J([{"query":"a","status":"failed","failed_reason":"x"},{"query":"b","status":"pending"}])J";
  r.emplace_back("failed_reason", "x");
  auto j = decoded("carto-5", r);
  EXPECT_EQ(j.steps[0].failed_reason, "x");
  EXPECT_EQ(j.steps[1].status, status::pending);
  EXPECT_FALSE(next_statement(j, 1000).has_value());
}

TEST(CartoRecord, APendingJobFallbackRunsWithItsTimeoutAndFallbacks) {
  auto r = carto_simple("pending");
  r[1].second =
      R"J({"query":[{"query":"select pg_sleep(0.1)","onsuccess":"select 2","timeout":50,)J"
      R"J("id":"a0:b1:c2","status":"pending","fallback_status":"pending"}],)J"
      R"J("onerror":"select 3"})J";
  r.emplace_back("fallback_status", "pending");
  auto j = decoded("carto-6", r);
  EXPECT_EQ(j.shape, shape::nested);
  EXPECT_EQ(j.steps[0].timeout_ms, 50);
  EXPECT_EQ(j.steps[0].id, "a0:b1:c2");
  EXPECT_EQ(j.onerror, "select 3");
  EXPECT_EQ(next_statement(j, 1000)->timeout_ms, 50);
  driver d;
  d.run(j);
  EXPECT_EQ(d.ran, (std::vector<std::string>{"select pg_sleep(0.1)", "select 2"}));
  EXPECT_EQ(j.status, status::done);
  EXPECT_EQ(j.fallback_status, status::skipped);
  // Written back in CARTO's layout.
  auto back = json::parse(*field(encode(j), "query"));
  EXPECT_EQ(back["onerror"], "select 3");
  EXPECT_EQ(back["query"][0]["fallback_status"], "done");
  EXPECT_EQ(back["query"][0]["timeout"], 50);
}

TEST(CartoRecord, AJobFallbackLeftPendingBeforeItsOnerrorResumesThere) {
  // CARTO sets a JobFallback back to pending between statements and does not set
  // the job's failed_reason until the end.
  auto r = carto_simple("pending");
  r[1].second =
      R"J({"query":[{"query":"a","onerror":"INSERT INTO e VALUES ('<%= error_message %>')",)J"
      R"J("status":"failed","fallback_status":"pending","failed_reason":"it's gone",)J"
      R"J("started_at":"2016-07-06T10:10:10.200Z","ended_at":"2016-07-06T10:10:10.300Z"},)J"
      R"J({"query":"b","status":"skipped"}],"onerror":"SELECT '<%= error_message %>'"})J";
  r.emplace_back("fallback_status", "pending");
  auto j = decoded("carto-7", r);
  driver d;
  d.run(j);
  EXPECT_EQ(d.ran, (std::vector<std::string>{"INSERT INTO e VALUES ('it''s gone')",
                                             "SELECT 'it''s gone'"}));
  EXPECT_EQ(j.status, status::failed);
  EXPECT_EQ(j.failed_reason, "it's gone");
  EXPECT_EQ(j.steps[0].started_at, "2016-07-06T10:10:10.200Z");
}

TEST(CartoRecord, ADoneJobFallbackEchoesCartosNestedShape) {
  auto r = carto_simple("done");
  r[1].second =
      R"J({"query":[{"query":"a","onsuccess":"s","status":"done","fallback_status":"done",)J"
      R"J("started_at":"2016-07-06T10:10:10.200Z","ended_at":"2016-07-06T10:10:10.300Z"}],)J"
      R"J("onsuccess":"js"})J";
  r.emplace_back("fallback_status", "done");
  auto j = decoded("carto-8", r);
  auto resp = to_response(j);
  EXPECT_EQ(resp["query"]["onsuccess"], "js");
  EXPECT_EQ(resp["query"]["query"][0]["ended_at"], "2016-07-06T10:10:10.300Z");
  EXPECT_EQ(resp["fallback_status"], "done");
  EXPECT_FALSE(resp.contains("pass"));
}

TEST(CartoRecord, UnreadableRecordsAreRefusedWithAReason) {
  auto missing = carto_simple("pending");
  missing.erase(missing.begin()); // user
  auto e1 = decode("x", missing);
  ASSERT_FALSE(e1);
  EXPECT_EQ(e1.error().kind, problem_kind::invalid_record);
  EXPECT_EQ(e1.error().message, "job record x: missing field 'user'");
  auto bad_status = carto_simple("paused");
  EXPECT_EQ(decode("x", bad_status).error().message, "job record x: unknown status 'paused'");
  auto bad_query = carto_simple("pending");
  bad_query[1].second = R"J({"foo": 1})J";
  EXPECT_EQ(decode("x", bad_query).error().message, "job record x: query is no job shape");
  auto bad_step = carto_simple("pending");
  bad_step[1].second = R"J([{"status": "pending"}])J";
  EXPECT_EQ(decode("x", bad_step).error().message, "job record x: query step 0 has no query");
}

TEST(Record, FlatRepliesBecomePairs) {
  EXPECT_EQ(from_flat({"a", "1", "b", "2", "dangling"}), (record{{"a", "1"}, {"b", "2"}}));
}

TEST(StateFields, SetEveryMutableFieldAndDeleteTheAbsentOnes) {
  auto j = job_from(R"J({"query": [{"query": "a", "onerror": "e"}, "b"]})J");
  driver d;
  d.failures["a"] = "no";
  d.run(j, when_running("e"));
  auto u = state_fields(j);
  std::vector<std::string> set_keys;
  for (auto& kv : u.set)
    set_keys.push_back(kv.first);
  EXPECT_EQ(set_keys, (std::vector<std::string>{"status", "updated_at", "query", "failed_reason"}));
  EXPECT_EQ(u.del, (std::vector<std::string>{"fallback_status", "fallback_failed_reason", "node"}));
  EXPECT_EQ(json::parse(u.set[2].second)[0]["fallback_status"], "running");
}

TEST(StateFields, OfASimpleJobCarryItsStepStatusButNotItsQuery) {
  auto j = job_from(R"J({"query": "a"})J");
  driver d;
  d.run(j, when_running("a"));
  auto u = state_fields(j);
  EXPECT_EQ(field(u.set, "step_status"), "running");
  EXPECT_TRUE(field(u.set, "step_started_at").has_value());
  EXPECT_FALSE(field(u.set, "query").has_value());
  EXPECT_NE(std::find(u.del.begin(), u.del.end(), "step_ended_at"), u.del.end());
}

} // namespace
} // namespace batchq::job::test
