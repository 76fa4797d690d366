// Unit tests of the client commands' pure helpers (src/cli/format.hpp):
// times, durations, SQL cut to one line, the job views of every response
// shape, the get/watch/list renderings, the terminal redraw, --url.
#include <gtest/gtest.h>

#include "src/cli/format.hpp"

namespace batchq::cli {
namespace {

using nlohmann::json;

// 2026-11-28T17:36:10.905Z in ms since the epoch (date -u -d ... +%s = 1795887370).
constexpr int64_t t0 = 1795887370905;

TEST(ClientFormat, FinalStatusesAreDoneFailedCancelledAndUnknown) {
  for (auto s : {"done", "failed", "cancelled", "unknown"})
    EXPECT_TRUE(is_final_status(s)) << s;
  for (auto s : {"pending", "running", "skipped", "", "DONE"})
    EXPECT_FALSE(is_final_status(s)) << s;
}

TEST(ClientFormat, IsoTimestampsOfTheApiParseToEpochMilliseconds) {
  EXPECT_EQ(parse_time_ms("2026-11-28T17:36:10.905Z"), t0);
  EXPECT_EQ(parse_time_ms("2026-11-28T17:36:10Z"), t0 - 905);
  EXPECT_EQ(parse_time_ms("2026-11-28T17:36:10.9Z"), t0 - 5);
  EXPECT_EQ(parse_time_ms("2026-11-28T17:36:10.905123Z"), t0);
  EXPECT_EQ(parse_time_ms("2026-11-28T17:36:10.905+00:00"), t0);
  EXPECT_EQ(parse_time_ms("1970-01-01T00:00:00.000Z"), 0);
  EXPECT_EQ(parse_time_ms("2000-03-01T00:00:00Z"), int64_t{951868800} * 1000);
}

TEST(ClientFormat, TimestampsInAnotherFormatDoNotParse) {
  for (auto s : {"", "yesterday", "2026-11-28", "2026-11-28T17:36:10.905", "2026-11-28T17:36:10.Z",
                 "2026-11-28T17:36:10.905+01:00", "2026-13-28T17:36:10Z", "2026-11-28T25:00:00Z",
                 "Sat Nov 28 2026 17:36:10 GMT+0000"})
    EXPECT_FALSE(parse_time_ms(s).has_value()) << s;
}

TEST(ClientFormat, DurationsAreShortAndPickTheirUnit) {
  EXPECT_EQ(format_duration(0), "0ms");
  EXPECT_EQ(format_duration(850), "850ms");
  EXPECT_EQ(format_duration(1000), "1.0s");
  EXPECT_EQ(format_duration(12'345), "12.3s");
  EXPECT_EQ(format_duration(59'999), "59.9s");
  EXPECT_EQ(format_duration(245'000), "4m05s");
  EXPECT_EQ(format_duration(7'380'000), "2h03m");
  EXPECT_EQ(format_duration(-5), "0ms");
}

TEST(ClientFormat, SqlIsFlattenedToOneLineAndCutWithDots) {
  EXPECT_EQ(one_line("  SELECT 1\n  FROM\tt  ", 0), "SELECT 1 FROM t");
  EXPECT_EQ(one_line("SELECT 1", 8), "SELECT 1");
  EXPECT_EQ(one_line("SELECT 12345", 10), "SELECT...") << "no space before the dots";
  EXPECT_EQ(one_line(std::string(200, 'x'), 60), std::string(57, 'x') + "...");
  EXPECT_EQ(one_line("", 60), "");
}

TEST(ClientFormat, CuttingSqlNeverSplitsAUtf8Character) {
  // "é" is two bytes; 10 of them cut to 7 characters + "...".
  std::string e = "\xc3\xa9";
  std::string ten;
  for (int i = 0; i < 10; ++i)
    ten += e;
  std::string seven;
  for (int i = 0; i < 7; ++i)
    seven += e;
  EXPECT_EQ(one_line(ten, 10), ten);
  EXPECT_EQ(one_line(ten, 9), seven.substr(0, 6 * 2) + "...");
}

json simple_job() {
  return json::parse(R"J({"job_id":"j1","user":"alice","status":"failed",
    "query":"SELECT 1/0","created_at":"2026-11-28T17:36:10.905Z",
    "updated_at":"2026-11-28T17:36:12.105Z","failed_reason":"division by zero"})J");
}

json unified_job() {
  return json::parse(R"J({"job_id":"j2","user":"alice","status":"running",
    "query":[
      {"query":"SELECT 1","status":"done","started_at":"2026-11-28T17:36:10.905Z",
       "ended_at":"2026-11-28T17:36:11.105Z","onsuccess":"INSERT INTO log VALUES (1)",
       "fallback_status":"done"},
      {"query":"SELECT pg_sleep(5)","status":"running","started_at":"2026-11-28T17:36:11.105Z"},
      {"query":"SELECT 3","status":"pending"}],
    "onerror":"INSERT INTO log VALUES ('<%= error_message %>')","fallback_status":"pending",
    "created_at":"2026-11-28T17:36:10.905Z","updated_at":"2026-11-28T17:36:11.105Z"})J");
}

json nested_job() {
  return json::parse(R"J({"job_id":"j3","user":"bob","status":"done",
    "query":{"query":[{"query":"SELECT 1","status":"done","onerror":"SELECT 2",
                       "fallback_status":"skipped"}],
             "onsuccess":"SELECT 'ok'"},
    "fallback_status":"done",
    "created_at":"2026-11-28T17:36:10.905Z","updated_at":"2026-11-28T17:36:11.905Z"})J");
}

TEST(ClientFormat, ASimpleJobIsOneStepWithTheJobsStatusAndReason) {
  auto v = to_view(simple_job());
  EXPECT_TRUE(v.simple);
  ASSERT_EQ(v.steps.size(), 1u);
  EXPECT_EQ(v.steps[0].query, "SELECT 1/0");
  EXPECT_EQ(v.steps[0].status, "failed");
  EXPECT_EQ(v.steps[0].failed_reason, "division by zero");
  EXPECT_EQ(job_elapsed_ms(v, std::nullopt), 1200);
}

TEST(ClientFormat, AUnifiedJobKeepsEveryStepAndItsFallbacks) {
  auto v = to_view(unified_job());
  EXPECT_FALSE(v.simple);
  ASSERT_EQ(v.steps.size(), 3u);
  EXPECT_EQ(v.steps[0].onsuccess, "INSERT INTO log VALUES (1)");
  EXPECT_EQ(v.steps[0].fallback_status, "done");
  EXPECT_EQ(step_elapsed_ms(v.steps[0], std::nullopt), 200);
  EXPECT_EQ(step_elapsed_ms(v.steps[1], std::nullopt), std::nullopt) << "running, no clock";
  EXPECT_EQ(step_elapsed_ms(v.steps[1], t0 + 3200), 3000);
  EXPECT_EQ(step_elapsed_ms(v.steps[2], t0 + 3200), std::nullopt) << "never started";
  EXPECT_EQ(v.onerror, "INSERT INTO log VALUES ('<%= error_message %>')");
  EXPECT_EQ(v.fallback_status, "pending");
  EXPECT_EQ(job_elapsed_ms(v, t0 + 5000), 5000) << "not final: since created_at";
}

TEST(ClientFormat, TheNestedFormsJobLevelFallbacksAreLiftedToTheJob) {
  auto v = to_view(nested_job());
  ASSERT_EQ(v.steps.size(), 1u);
  EXPECT_EQ(v.steps[0].onerror, "SELECT 2");
  EXPECT_EQ(v.onsuccess, "SELECT 'ok'");
  EXPECT_EQ(v.fallback_status, "done");
}

TEST(ClientFormat, AMultipleJobOfPlainStringsShowsEachString) {
  auto v = to_view(
    json::parse(R"J({"job_id":"j","status":"pending","query":["SELECT 1","SELECT 2"]})J"));
  ASSERT_EQ(v.steps.size(), 2u);
  EXPECT_EQ(v.steps[1].query, "SELECT 2");
  EXPECT_EQ(v.steps[1].status, "");
}

TEST(ClientFormat, FieldsOfUnexpectedTypesRenderAsEmptyWithoutThrowing) {
  auto v = to_view(json::parse(R"J({"job_id":7,"status":null,"query":42})J"));
  EXPECT_EQ(v.job_id, "");
  EXPECT_TRUE(v.steps.empty());
  EXPECT_NO_THROW(render_job(v, t0));
  EXPECT_NO_THROW(render_progress(v, t0));
  EXPECT_TRUE(to_view(json::array()).job_id.empty());
  EXPECT_EQ(render_job_table(json::parse(R"J([1, "x", {"query": {"query": 3}}])J")).substr(0, 6),
            "JOB_ID");
}

TEST(ClientFormat, GetShowsFieldsThenStepsWithTimesReasonsAndFallbacks) {
  auto text = render_job(to_view(unified_job()), t0 + 3200);
  EXPECT_EQ(text, "job_id      j2\n"
                  "user        alice\n"
                  "status      running\n"
                  "created_at  2026-11-28T17:36:10.905Z\n"
                  "updated_at  2026-11-28T17:36:11.105Z\n"
                  "elapsed     3.2s\n"
                  "onerror     INSERT INTO log VALUES ('<%= error_message %>')\n"
                  "fallback    pending\n"
                  "steps:\n"
                  "  1  done     200ms  SELECT 1\n"
                  "     onsuccess: INSERT INTO log VALUES (1)\n"
                  "     fallback: done\n"
                  "  2  running  3.0s   SELECT pg_sleep(5)\n"
                  "  3  pending         SELECT 3\n");
}

TEST(ClientFormat, GetOfAFailedSimpleJobShowsTheReasonOnce) {
  auto text = render_job(to_view(simple_job()), t0);
  EXPECT_EQ(text, "job_id      j1\n"
                  "user        alice\n"
                  "status      failed\n"
                  "created_at  2026-11-28T17:36:10.905Z\n"
                  "updated_at  2026-11-28T17:36:12.105Z\n"
                  "elapsed     1.2s\n"
                  "error       division by zero\n"
                  "step:\n"
                  "  1  failed   1.2s   SELECT 1/0\n");
}

TEST(ClientFormat, ProgressWithoutAClockHasNoTickingTimes) {
  auto v = to_view(unified_job());
  EXPECT_EQ(render_progress(v, std::nullopt), "job j2  running\n"
                                               "  1  done     200ms  SELECT 1  (fallback done)\n"
                                               "  2  running         SELECT pg_sleep(5)\n"
                                               "  3  pending         SELECT 3\n"
                                               "  job fallback: pending\n");
  EXPECT_EQ(render_progress(v, t0 + 3200), "job j2  running  3.2s\n"
                                           "  1  done     200ms  SELECT 1  (fallback done)\n"
                                           "  2  running  3.0s   SELECT pg_sleep(5)\n"
                                           "  3  pending         SELECT 3\n"
                                           "  job fallback: pending\n");
}

TEST(ClientFormat, ProgressOfAFailedStepShowsItsReasonUnderIt) {
  auto j = unified_job();
  j["status"] = "failed";
  j["updated_at"] = "2026-11-28T17:36:12.105Z";
  j["query"][1]["status"] = "failed";
  j["query"][1]["failed_reason"] = "canceling statement due to statement timeout";
  j["query"][1]["ended_at"] = "2026-11-28T17:36:12.105Z";
  j["query"][2]["status"] = "skipped";
  auto text = render_progress(to_view(j), std::nullopt);
  EXPECT_NE(text.find("  2  failed   1.0s   SELECT pg_sleep(5)\n"
                      "     error: canceling statement due to statement timeout\n"),
            std::string::npos)
    << text;
  EXPECT_NE(text.find("job j2  failed  1.2s\n"), std::string::npos) << text;
}

TEST(ClientFormat, TheListTableIsAlignedAndCutsSqlTo60Characters) {
  auto jobs = json::array({simple_job(), unified_job()});
  jobs[0]["query"] = "SELECT " + std::string(100, 'x');
  auto text = render_job_table(jobs);
  EXPECT_EQ(text, "JOB_ID  STATUS   CREATED_AT                QUERY\n"
                  "j1      failed   2026-11-28T17:36:10.905Z  SELECT "
                    + std::string(50, 'x') + "...\n"
                  "j2      running  2026-11-28T17:36:10.905Z  SELECT 1; SELECT pg_sleep(5); "
                  "SELECT 3\n");
  EXPECT_EQ(render_job_table(json::array()), "no jobs\n");
}

TEST(ClientFormat, RedrawMovesUpOverTheLastBlockAndErasesIt) {
  EXPECT_EQ(redraw(0, "a\nb\n"), "a\nb\n");
  EXPECT_EQ(redraw(3, "a\n"), "\x1b[3F\x1b[Ja\n");
  EXPECT_EQ(count_lines("a\nb\n"), 2u);
  EXPECT_EQ(count_lines(""), 0u);
}

TEST(ClientFormat, ErrorBodiesOfTheApiGiveTheirMessages) {
  EXPECT_EQ(error_message(json::parse(R"J({"error":["Unauthorized"]})J")), "Unauthorized");
  EXPECT_EQ(error_message(json::parse(R"J({"error":["a","b"]})J")), "a; b");
  EXPECT_EQ(error_message(json::parse(R"J({"error":"plain"})J")), "plain");
  EXPECT_EQ(error_message(json::parse(R"J({"job_id":"x"})J")), "");
  EXPECT_EQ(error_message(json::parse("[1]")), "");
}

TEST(ClientFormat, AUrlSplitsIntoOriginAndPathPrefix) {
  std::string why;
  auto u = parse_base_url("http://127.0.0.1:8080", why);
  ASSERT_TRUE(u) << why;
  EXPECT_EQ(u->origin, "http://127.0.0.1:8080");
  EXPECT_EQ(u->prefix, "");
  u = parse_base_url("HTTPS://batch.example.com/api/", why);
  ASSERT_TRUE(u) << why;
  EXPECT_EQ(u->origin, "https://batch.example.com");
  EXPECT_EQ(u->prefix, "/api");
  u = parse_base_url("http://[::1]:9000/", why);
  ASSERT_TRUE(u) << why;
  EXPECT_EQ(u->origin, "http://[::1]:9000");
  EXPECT_EQ(u->prefix, "");
}

TEST(ClientFormat, BadUrlsAreRefusedWithAReason) {
  struct bad {
    const char* url;
    const char* reason;
  };
  for (auto [url, reason] : {bad{"127.0.0.1:8080", "not a URL"},
                             bad{"ftp://host", "http or https"},
                             bad{"http://", "no host"},
                             bad{"http://host:0", "port"},
                             bad{"http://host:99999", "port"},
                             bad{"http://host:80x", "port"},
                             bad{"http://host:", "port"},
                             bad{"http://alice:secret@host", "no user or password"},
                             bad{"http://host/?api_key=x", "no query string"},
                             bad{"http://[::1", "unclosed"}}) {
    std::string why;
    EXPECT_FALSE(parse_base_url(url, why)) << url;
    EXPECT_NE(why.find(reason), std::string::npos) << url << ": " << why;
  }
}

TEST(ClientFormat, PathSegmentsArePercentEncoded) {
  EXPECT_EQ(encode_path_segment("alice-1_b.c~"), "alice-1_b.c~");
  EXPECT_EQ(encode_path_segment("a/b c?"), "a%2Fb%20c%3F");
  EXPECT_EQ(encode_path_segment("\xc3\xa9"), "%C3%A9");
}

} // namespace
} // namespace batchq::cli

namespace batchq::cli {
namespace {

TEST(ResultRows, ATerminalGetsAlignedColumnsAndPipesGetEscapedTsv) {
  auto columns = nlohmann::json::parse(R"([{"name":"n","type":"int4"},{"name":"label","type":"text"},
                                            {"name":"j","type":"jsonb"}])");
  std::vector<nlohmann::json> rows{nlohmann::json::parse(R"([1, "ä\tb", {"k": 1}])"),
                                   nlohmann::json::parse(R"([22, null, null])")};
  EXPECT_EQ(render_result_rows(columns, rows, true),
            "n   label  j\n"
            "--  -----  -------\n"
            "1   ä b    {\"k\":1}\n"
            "22  NULL   NULL\n"
            "(2 rows)\n");
  EXPECT_EQ(render_result_rows(columns, rows, false),
            "n\tlabel\tj\n1\tä\\tb\t{\"k\":1}\n22\t\\N\t\\N\n");
  EXPECT_EQ(render_result_rows(columns, {}, true), "n  label  j\n-  -----  -\n(0 rows)\n");
}

} // namespace
} // namespace batchq::cli
